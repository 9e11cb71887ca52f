"""This process's copy of each profile's token, so most lookups never reach Redis."""

from __future__ import annotations

from providers import Token


class MemoryCopy:
    """The last token seen per profile, kept only for the grant fingerprint it was fetched for.

    A profile whose credentials changed (the profiles file was edited) gets a
    new fingerprint, so its old token is never handed out for the new ones.
    With ``enabled`` false nothing is kept (each lookup reads Redis).
    """

    def __init__(self, *, enabled: bool = True) -> None:
        self.enabled = enabled
        self._tokens: dict[str, tuple[str, Token]] = {}

    def get(self, profile: str, fingerprint: str) -> Token | None:
        if not self.enabled:
            return None
        entry = self._tokens.get(profile)
        if entry is None or entry[0] != fingerprint:
            return None
        return entry[1]

    def keep(self, profile: str, fingerprint: str, token: Token) -> None:
        if self.enabled:
            self._tokens[profile] = (fingerprint, token)

    def __contains__(self, profile: str) -> bool:
        return profile in self._tokens

    def forget(self, profile: str) -> None:
        self._tokens.pop(profile, None)

    def clear(self) -> None:
        self._tokens.clear()
