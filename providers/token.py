"""The access token a grant returns, and what every grant looks like."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from providers.token_endpoint import TokenEndpoint


@dataclass(frozen=True)
class Token:
    """A bearer token and when it stops working (epoch seconds)."""

    access_token: str = field(repr=False)
    expires_at: float
    token_type: str = "Bearer"
    scope: str | None = None

    def expires_within(self, seconds: float, now: float | None = None) -> bool:
        """True when the token ends within ``seconds`` of ``now``.

        Callers ask with a skew margin (MSAL uses 5 minutes) so that a token is
        never handed to an SMTP session that may outlive it.
        """
        current = time.time() if now is None else now
        return self.expires_at - current <= seconds


class Grant(Protocol):
    """Turns stored credentials into a fresh token; one class per OAuth grant."""

    @property
    def name(self) -> str:
        """The profile this grant belongs to (for logs, errors and cache keys)."""
        ...

    @property
    def fingerprint(self) -> str:
        """Changes whenever the credentials change, so cached tokens are keyed by it."""
        ...

    def fetch(self, endpoint: TokenEndpoint) -> Token:
        """Ask the token endpoint for a new token."""
        ...


def fingerprint(*parts: str | None) -> str:
    """A short digest of credential material, safe to put in a cache key.

    The inputs are high-entropy secrets (client secrets, private keys, refresh
    tokens), so 16 hex digits of SHA-256 identify them without revealing them.
    """
    digest = hashlib.sha256("\x00".join(p or "" for p in parts).encode())
    return digest.hexdigest()[:16]
