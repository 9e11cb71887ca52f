"""A cap on connections (SMTP) or requests in flight (Graph) per profile across every worker.

Microsoft 365 allows 3 concurrent SMTP connections per mailbox and answers the
4th with "432 4.3.2 Concurrent connections limit exceeded"; Celery's own rate
limits are per worker, so the cap lives in Redis. Each connection holds a lease
that expires on its own if its process dies; times come from Redis's clock so
workers with skewed clocks agree.
"""

from __future__ import annotations

import logging
import uuid
from importlib.resources import files
from typing import Any

import redis

from worker import redis_keys
from worker.credentials import Profile
from worker.errors import UnavailableError
from worker.redis_adapter import redis_errors
from worker.settings import DEFAULTS
from worker.transport.errors import SessionError

log = logging.getLogger(__name__)

_SCRIPTS = files("worker.transport")


class ConnectionSlots:
    """At most ``limit`` leases per profile, each expiring unless renewed."""

    def __init__(
        self, client: redis.Redis, *, lease_seconds: float = DEFAULTS.smtp_slot_lease_seconds
    ) -> None:
        self.redis = client
        self.lease_ms = int(lease_seconds * 1000)
        self._acquire = client.register_script(_SCRIPTS.joinpath("slots_acquire.lua").read_text())
        self._renew = client.register_script(_SCRIPTS.joinpath("slots_renew.lua").read_text())

    def try_acquire(self, profile: str, limit: int) -> str | None:
        """A lease id, or None when all ``limit`` slots are taken right now."""
        lease = uuid.uuid4().hex
        key = redis_keys.smtp_slots(profile)
        with _unavailable(profile):
            taken = self._acquire(keys=[key], args=[limit, self.lease_ms, lease])
        return lease if taken else None

    def renew(self, profile: str, lease: str) -> bool:
        """Keep a long-lived connection's lease; False if it had expired."""
        with _unavailable(profile):
            key = redis_keys.smtp_slots(profile)
            return bool(self._renew(keys=[key], args=[self.lease_ms, lease]))

    def release(self, profile: str, lease: str) -> None:
        with _unavailable(profile):
            self.redis.zrem(redis_keys.smtp_slots(profile), lease)


def try_lease(slots: ConnectionSlots | None, profile: Profile) -> tuple[bool, str | None]:
    """(may go ahead, its lease); no lease is needed without a cap. Redis down: transient."""
    if slots is None or profile.max_connections is None:
        return True, None
    try:
        lease = slots.try_acquire(profile.name, profile.max_connections)
    except UnavailableError as exc:
        raise SessionError("connect", exc.message, kind="transient") from exc
    return lease is not None, lease


def release(slots: ConnectionSlots | None, profile: Profile, lease: str | None) -> None:
    """Give a lease back; if Redis cannot be told, the lease expires on its own."""
    if lease is None or slots is None:
        return
    try:
        slots.release(profile.name, lease)
    except UnavailableError:
        log.warning("profile %s: could not release a connection slot", profile.name)


def _unavailable(profile: str) -> Any:
    return redis_errors(f"connection slots of profile '{profile}'")
