"""What a token lookup hands back: the token and where it was found."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from providers import Token

TokenSource = Literal["memory", "redis", "fresh", "stale"]


@dataclass(frozen=True)
class CachedToken:
    """A token and where this lookup found it (recorded with each attempt)."""

    token: Token
    source: TokenSource
