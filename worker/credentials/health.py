"""How each profile's last token refresh went, for every process to read.

Every refresh (a worker's, beat's pre-refresh, ``mailpipe tokens refresh``)
writes one small Redis hash per profile: when, whether it worked, and if not
the token endpoint's error with its one-line hint; never a token. ``mailpipe
profiles status``, ``GET /v1/profiles`` and the metrics read it, so a broken
credential shows before a page needs it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

import redis
from redis.typing import EncodableT, FieldT

from providers import ProviderError, Token
from worker import redis_keys
from worker.errors import UnavailableError
from worker.metrics import Metrics, Samples
from worker.redis_adapter import redis_errors

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Refresh:
    """One profile's last token refresh."""

    at: datetime
    ok: bool
    error: str | None = None  # the OAuth error ("invalid_client"), else the error's kind
    text: str = ""  # one line, never a secret
    hint: str | None = None
    expires_at: datetime | None = None  # of the token it got


class TokenHealth:
    """Writes and reads the last refresh of each profile (Redis hashes)."""

    def __init__(self, client: redis.Redis, metrics: Metrics | None = None) -> None:
        self.redis = client
        self.metrics = metrics or Metrics(client)

    def refreshed(self, profile: str, token: Token) -> None:
        expires = datetime.fromtimestamp(token.expires_at, UTC).isoformat()
        self._write(profile, {"ok": "1", "expires_at": expires})

    def failed(self, profile: str, exc: ProviderError) -> None:
        error = exc.details.error or exc.kind
        self._write(profile, {"ok": "0", "error": error, "text": exc.message, "hint": exc.hint})
        self.metrics.record(
            Samples().count("token_refresh_failures", {"profile": profile, "error": error})
        )

    def last(self, profile: str) -> Refresh | None:
        """The last refresh of ``profile``, None if none was recorded (or Redis is down)."""
        try:
            with redis_errors(f"token health of profile '{profile}'"):
                raw = self.redis.hgetall(redis_keys.token_health(profile))
        except UnavailableError as exc:
            log.warning("%s", exc)
            return None
        if not raw:
            return None
        values = {_text(k): _text(v) for k, v in raw.items()}
        expires = values.get("expires_at")
        return Refresh(
            at=datetime.fromisoformat(values["at"]),
            ok=values.get("ok") == "1",
            error=values.get("error") or None,
            text=values.get("text", ""),
            hint=values.get("hint") or None,
            expires_at=datetime.fromisoformat(expires) if expires else None,
        )

    def _write(self, profile: str, values: dict[str, str | None]) -> None:
        record: dict[FieldT, EncodableT] = {"at": datetime.now(UTC).isoformat()}
        record.update({k: v or "" for k, v in values.items()})
        key = redis_keys.token_health(profile)
        try:
            with redis_errors(f"token health of profile '{profile}'"):
                pipe = self.redis.pipeline(transaction=True)
                pipe.delete(key)
                pipe.hset(key, mapping=record)
                pipe.execute()
        except UnavailableError as exc:  # health is a report: never fail a refresh for it
            log.warning("%s", exc)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
