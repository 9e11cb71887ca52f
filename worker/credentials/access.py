"""A profile's credentials for SMTP AUTH: a cached OAuth token, or its password."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from pydantic import SecretStr

from providers import Grant, PasswordCredentials, RefreshTokenGrant, RefreshTokenStore
from worker.credentials.grants import build_grant
from worker.credentials.profiles import Profiles
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
    """Hands out each profile's credentials; grants are built once per profiles file version."""

    def __init__(
        self,
        profiles: Profiles | ProfilesFile,
        cache: TokenCache,
        refresh_tokens: RefreshTokenStore,
    ) -> None:
        self._source = profiles
        self.cache = cache
        self.refresh_tokens = refresh_tokens
        self._grants: dict[str, Grant] = {}
        self._grants_of: Profiles | None = None

    @property
    def profiles(self) -> Profiles:
        source = self._source
        return source.current() if isinstance(source, ProfilesFile) else source

    def grant(self, name: str) -> Grant:
        profiles = self.profiles
        if profiles is not self._grants_of:  # the file was reloaded: its grants may differ
            self._grants, self._grants_of = {}, profiles
        grant = self._grants.get(name)
        if grant is None:
            grant = build_grant(profiles.get(name), self.refresh_tokens)
            self._grants[name] = grant
        return grant

    def get(self, name: str, *, force: bool = False) -> SmtpCredentials:
        """Credentials for SMTP AUTH; for OAuth profiles, a token from the cache."""
        profile = self.profiles.get(name)
        if profile.oauth is None:
            return PasswordCredentials(
                username=profile.username, password=profile.password or SecretStr("")
            )
        cached = self.cache.get(self.grant(name), force=force)
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
        key = f"{name}.bounces"
        self.grant(name)  # resets the grants when the file was reloaded
        grant = self._grants.get(key)
        if grant is None:
            oauth = profile.oauth.model_copy(update={"scope": mailbox.scope})
            reader = profile.model_copy(update={"name": key, "oauth": oauth})
            grant = build_grant(reader, self.refresh_tokens)
            if isinstance(grant, RefreshTokenGrant):
                # The profile's own refresh token: the one `mailpipe oauth authorize` stored
                # and every refresh rotates, under the profile's lock.
                grant = replace(grant, chain=name)
            self._grants[key] = grant
        cached = self.cache.get(grant)
        return OAuthCredentials(username=mailbox.username, cached=cached, sasl="xoauth2")

    def invalidate(self, name: str, rejected: OAuthCredentials) -> None:
        """Call after the SMTP server rejected the token (535 and friends)."""
        self.cache.invalidate(name, rejected.cached.token)
