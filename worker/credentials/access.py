"""A profile's credentials for SMTP AUTH: a cached OAuth token, or its password."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

from pydantic import SecretStr

from providers import Grant, PasswordCredentials, RefreshTokenGrant, RefreshTokenStore
from worker.credentials.grants import build_grant
from worker.credentials.profiles import Profile, Profiles
from worker.credentials.profiles_source import ProfilesFile
from worker.credentials.tokens import CachedToken, TokenCache, TokenSource


@dataclass(frozen=True)
class OAuthCredentials:
    """What SASL XOAUTH2 / OAUTHBEARER sends: the mailbox and a bearer token."""

    username: str
    cached: CachedToken
    sasl: Literal["xoauth2", "oauthbearer"] | None

    @property
    def access_token(self) -> str:
        return self.cached.token.access_token

    @property
    def source(self) -> TokenSource:
        return self.cached.source


SmtpCredentials = OAuthCredentials | PasswordCredentials


class Credentials:
    """Hands out each profile's credentials; a grant is built once per version of its profile.

    Callers pass the ``Profile`` they resolved (a delivery resolves it once),
    so a reload of the profiles file between two steps of one send cannot mix
    versions; the next send brings the new version and gets a new grant.
    """

    def __init__(
        self,
        profiles: Profiles | ProfilesFile,
        cache: TokenCache,
        refresh_tokens: RefreshTokenStore,
    ) -> None:
        self._source = profiles
        self.cache = cache
        self.refresh_tokens = refresh_tokens
        # Each grant with the profile object it was built from: another object is another version.
        self._grants: dict[str, tuple[Profile, Grant]] = {}

    @property
    def profiles(self) -> Profiles:
        source = self._source
        return source.current() if isinstance(source, ProfilesFile) else source

    def grant(self, profile: Profile) -> Grant:
        return self._grant(profile.name, profile, lambda: build_grant(profile, self.refresh_tokens))

    def get(self, profile: Profile, *, force: bool = False) -> SmtpCredentials:
        """Credentials for SMTP AUTH; for OAuth profiles, a token from the cache."""
        if profile.oauth is None:
            return PasswordCredentials(
                username=profile.username, password=profile.password or SecretStr("")
            )
        cached = self.cache.get(self.grant(profile), force=force)
        return OAuthCredentials(username=profile.username, cached=cached, sasl=profile.sasl)

    def mailbox(self, name: str) -> SmtpCredentials:
        """Credentials for reading profile ``name``'s bounce mailbox (IMAP).

        OAuth: a token from the profile's own client for the mailbox's scope,
        cached apart from its SMTP token (a grant named ``NAME.bounces``); a
        delegated profile's comes from its stored, rotated refresh token.
        """
        profile = self.profiles.get(name)
        mailbox = profile.bounces
        if mailbox is None:
            raise ValueError(f"profile '{name}' reads no bounce mailbox")
        if profile.oauth is None:
            password = profile.password or SecretStr("")
            return PasswordCredentials(username=mailbox.username, password=password)
        oauth = profile.oauth
        key = f"{name}.bounces"

        def build() -> Grant:
            reader = profile.model_copy(
                update={"name": key, "oauth": oauth.model_copy(update={"scope": mailbox.scope})}
            )
            grant = build_grant(reader, self.refresh_tokens)
            if isinstance(grant, RefreshTokenGrant):
                # The profile's own refresh token: the one `mailpipe oauth authorize` stored
                # and every refresh rotates, under the profile's lock.
                grant = replace(grant, chain=name)
            return grant

        cached = self.cache.get(self._grant(key, profile, build))
        return OAuthCredentials(username=mailbox.username, cached=cached, sasl="xoauth2")

    def _grant(self, key: str, profile: Profile, build: Callable[[], Grant]) -> Grant:
        built = self._grants.get(key)
        if built is None or built[0] is not profile:  # new, or its profile was reloaded
            built = self._grants[key] = (profile, build())
        return built[1]

    def invalidate(self, name: str, rejected: OAuthCredentials) -> None:
        """Call after the SMTP server rejected the token (535 and friends)."""
        self.cache.invalidate(name, rejected.cached.token)
