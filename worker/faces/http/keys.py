"""API keys of the HTTP intake: kept as SHA-256 digests, each limited to what it was given.

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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from worker.faces.http.problems import Problem
from worker.settings import ANY, ApiKeySpec

KEY_PREFIX = "mp_"


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class Caller:
    """Who is asking: a key's name and what it may use; nothing it was not given.

    ``name`` is None only when no keys are configured (``ANYONE``, loopback).
    """

    name: str | None
    profiles: frozenset[str] = frozenset()
    routes: frozenset[str] = frozenset()
    admin: bool = False

    def may_send_as(self, profile: str) -> bool:
        return ANY in self.profiles or profile in self.profiles

    def may_use_route(self, route: str) -> bool:
        return ANY in self.routes or route in self.routes

    def check_profile(self, profile: str) -> None:
        if not self.may_send_as(profile):
            raise Problem(403, "Forbidden", f"this API key may not send as profile '{profile}'")

    def check_route(self, route: str) -> None:
        if not self.may_use_route(route):
            raise Problem(403, "Forbidden", f"this API key may not use route '{route}'")

    def may_see(self, made_by: str | None) -> bool:
        """A job made by the key named ``made_by`` (None: not made with a key)."""
        return self.admin or (self.name is not None and made_by == self.name)

    def reachable(self, profiles: Iterable[str], routes: Mapping[str, str]) -> list[str]:
        """Of ``profiles``, those this key may send through, directly or by one of its
        ``routes`` (route name → profile); every one for an admin key."""
        by_route = {profile for route, profile in routes.items() if self.may_use_route(route)}
        return sorted(p for p in profiles if self.admin or self.may_send_as(p) or p in by_route)

    def usable_profiles(self, known: Iterable[str]) -> list[str]:
        """Of the ``known`` profiles, those this key may send as (for an error to name)."""
        return sorted(name for name in known if self.may_send_as(name))

    def usable_routes(self, known: Iterable[str]) -> list[str]:
        return sorted(name for name in known if self.may_use_route(name))


# No keys configured: serve listens on loopback only, and whoever connects may do anything.
ANYONE = Caller(name=None, profiles=frozenset({ANY}), routes=frozenset({ANY}), admin=True)


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
                    profiles=frozenset(spec.profiles),
                    routes=frozenset(spec.routes),
                    admin=spec.admin,
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
