"""API keys of the HTTP intake: kept as SHA-256 digests, each limited to profiles and routes.

A key is 32 random bytes, so a plain SHA-256 is enough to store it safely (no
password stretching is needed for a secret nobody chose). Webhook senders
that cannot set headers pass it as ``?api_key=`` or as the password of HTTP
basic auth, which Alertmanager's and Grafana's webhook settings offer.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from worker.faces.http.problems import Problem
from worker.settings import ApiKeySpec

KEY_PREFIX = "mp_"


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class Caller:
    """Who is asking: a key's name and what it may use (None: everything)."""

    name: str | None
    profiles: frozenset[str] | None = None
    routes: frozenset[str] | None = None

    def check_profile(self, profile: str) -> None:
        if self.profiles is not None and profile not in self.profiles:
            raise Problem(403, "Forbidden", f"this API key may not send as profile '{profile}'")

    def check_route(self, route: str) -> None:
        if self.routes is not None and route not in self.routes:
            raise Problem(403, "Forbidden", f"this API key may not use route '{route}'")

    def may_see(self, profile: str) -> bool:
        return self.profiles is None or profile in self.profiles


ANYONE = Caller(name=None)


class ApiKeys:
    """Checks the key a request presents; with no keys configured every request is allowed."""

    def __init__(self, specs: Sequence[ApiKeySpec]) -> None:
        self.specs = tuple(specs)

    @property
    def required(self) -> bool:
        return bool(self.specs)

    def caller(self, authorization: str | None, query_key: str | None) -> Caller:
        if not self.required:
            return ANYONE
        presented = query_key or _from_header(authorization)
        if not presented:
            raise Problem(
                401,
                "Unauthorized",
                "an API key is required: 'Authorization: Bearer KEY', HTTP basic auth with "
                "the key as password, or ?api_key=KEY",
                headers={"WWW-Authenticate": 'Bearer realm="mailpipe"'},
            )
        wanted = digest(presented)
        for spec in self.specs:
            if hmac.compare_digest(wanted, spec.sha256):
                return Caller(
                    name=spec.name,
                    profiles=frozenset(spec.profiles) or None,
                    routes=frozenset(spec.routes) or None,
                )
        raise Problem(
            401,
            "Unauthorized",
            "the API key is not valid",
            headers={"WWW-Authenticate": 'Bearer realm="mailpipe", error="invalid_token"'},
        )


def _from_header(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() == "bearer":
        return credentials.strip() or None
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[2] or None
    return None
