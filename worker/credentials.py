"""A profile's SMTP credentials: a cached OAuth token, or its password.

The one place that knows how a profile's fields become a ``providers`` grant.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import httpx
import redis
from cryptography.fernet import MultiFernet
from pydantic import SecretStr

from providers import (
    ClientCertificate,
    ClientCredentialsGrant,
    Grant,
    PasswordCredentials,
    RefreshTokenGrant,
    RefreshTokenStore,
    RetryPolicy,
    ServiceAccountGrant,
    ServiceAccountKey,
)
from worker.profiles import OAuthConfig, Profile, Profiles
from worker.settings import Settings
from worker.token_cache import CachedToken, TokenCache, TokenSource


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


def token_cache(settings: Settings, client: redis.Redis, fernet: MultiFernet) -> TokenCache:
    """The token cache as the settings describe it."""
    http = httpx.Client(
        timeout=httpx.Timeout(
            settings.token_read_timeout_seconds, connect=settings.token_connect_timeout_seconds
        )
    )
    return TokenCache(
        client,
        fernet,
        http,
        policy=RetryPolicy(
            max_attempts=settings.token_max_attempts,
            deadline_seconds=settings.token_deadline_seconds,
            retry_after_max_seconds=settings.token_retry_after_max_seconds,
        ),
        skew_seconds=settings.token_skew_seconds,
        lock_seconds=settings.token_lock_seconds,
        wait_seconds=settings.token_wait_seconds,
    )


def build_grant(profile: Profile, refresh_tokens: RefreshTokenStore) -> Grant:
    """The providers grant for an OAuth profile (keys are parsed here, once)."""
    oauth = profile.oauth
    if oauth is None:
        raise ValueError(f"profile '{profile.name}' does not use OAuth")
    if oauth.grant == "client_credentials":
        certificate = None
        if oauth.client_certificate is not None:
            certificate = ClientCertificate.from_pem(oauth.client_certificate.get_secret_value())
        return ClientCredentialsGrant(
            name=profile.name,
            token_url=oauth.token_url,
            client_id=oauth.client_id or "",
            scope=oauth.scope,
            client_secret=oauth.client_secret,
            certificate=certificate,
            client_auth=oauth.client_auth,
            assertion_algorithm=oauth.assertion_algorithm,
        )
    if oauth.grant == "refresh_token":
        return RefreshTokenGrant(
            name=profile.name,
            token_url=oauth.token_url,
            client_id=oauth.client_id or "",
            scope=oauth.scope,
            seed_refresh_token=oauth.refresh_token or SecretStr(""),
            store=refresh_tokens,
            client_secret=oauth.client_secret,
            client_auth=oauth.client_auth,
            redirect_uri=oauth.redirect_uri,
        )
    return ServiceAccountGrant(
        name=profile.name,
        key=_service_account_key(oauth),
        subject=oauth.subject or profile.from_email,
        scope=oauth.scope or "https://mail.google.com/",
        token_url=oauth.token_url,
    )


def _service_account_key(oauth: OAuthConfig) -> ServiceAccountKey:
    if oauth.service_account_json is not None:
        return ServiceAccountKey.from_json(oauth.service_account_json.get_secret_value())
    return ServiceAccountKey.from_pem(
        (oauth.private_key or SecretStr("")).get_secret_value(),
        client_email=oauth.client_email or "",
        private_key_id=oauth.private_key_id,
    )


class Credentials:
    """Hands out each profile's credentials; grants are built once per process."""

    def __init__(
        self, profiles: Profiles, cache: TokenCache, refresh_tokens: RefreshTokenStore
    ) -> None:
        self.profiles = profiles
        self.cache = cache
        self.refresh_tokens = refresh_tokens
        self._grants: dict[str, Grant] = {}

    def grant(self, name: str) -> Grant:
        grant = self._grants.get(name)
        if grant is None:
            grant = build_grant(self.profiles.get(name), self.refresh_tokens)
            self._grants[name] = grant
        return grant

    def get(self, name: str, *, force: bool = False) -> OAuthCredentials | PasswordCredentials:
        """Credentials for SMTP AUTH; for OAuth profiles, a token from the cache."""
        profile = self.profiles.get(name)
        if profile.oauth is None:
            return PasswordCredentials(
                username=profile.username, password=profile.password or SecretStr("")
            )
        cached = self.cache.get(self.grant(name), force=force)
        return OAuthCredentials(username=profile.username, cached=cached, sasl=profile.sasl)

    def invalidate(self, name: str, rejected: OAuthCredentials) -> None:
        """Call after the SMTP server rejected the token (535 and friends)."""
        self.cache.invalidate(name, rejected.cached.token)
