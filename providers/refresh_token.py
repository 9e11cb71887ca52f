"""OAuth 2.0 refresh token grant (RFC 6749 §6): Microsoft 365 delegated access.

Providers rotate refresh tokens: Microsoft's "replaces itself with a fresh
token upon every use", and servers with reuse detection revoke the whole
token family when a retired one is replayed (RFC 9700 §4.14.2). So the newest
refresh token is persisted *before* the access token is handed out, and the
next refresh starts from the persisted one.

The refresh token in the profile is only the seed. The store keys what it
keeps by a digest of that seed: when a person puts a new seed in the profile
(after consenting again), the old chain is ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Protocol

from pydantic import SecretStr

from providers.client_credentials import ClientAuth
from providers.errors import CredentialsConfigError
from providers.token import Token, fingerprint
from providers.token_endpoint import TokenEndpoint


class RefreshTokenStore(Protocol):
    """Durable home of the newest refresh token per profile (encrypted at rest)."""

    def load(self, profile: str, seed_digest: str) -> str | None:
        """The newest refresh token descended from this seed, or None."""
        ...

    def save(self, profile: str, seed_digest: str, refresh_token: str) -> None:
        """Persist a rotated refresh token; must be durable when it returns."""
        ...


@dataclass(frozen=True)
class RefreshTokenGrant:
    """Delegated access for a user who consented once; no user interaction after that."""

    name: str
    token_url: str
    client_id: str
    scope: str | None
    # None: the first refresh token came from signing in (mailpipe oauth authorize).
    seed_refresh_token: SecretStr | None
    store: RefreshTokenStore = field(repr=False)
    client_secret: SecretStr | None = None
    client_auth: ClientAuth = "body"
    redirect_uri: str | None = None
    # The CA of a token endpoint with a private certificate authority.
    ca_file: str | None = None
    # The profile whose refresh token this grant uses and rotates, when that is not ``name``:
    # a second grant of one profile (its bounce mailbox's scope) shares the profile's chain,
    # or the two would replay each other's retired tokens.
    chain: str | None = None

    @property
    def owner(self) -> str:
        """The profile the refresh token belongs to (stored, rotated and locked under)."""
        return self.chain or self.name

    @cached_property
    def seed_digest(self) -> str:
        seed = self.seed_refresh_token.get_secret_value() if self.seed_refresh_token else ""
        return fingerprint("refresh_token_seed", seed)

    @cached_property
    def fingerprint(self) -> str:
        secret = self.client_secret.get_secret_value() if self.client_secret else None
        return fingerprint(
            "refresh_token", self.token_url, self.client_id, self.scope, secret, self.seed_digest
        )

    def current_refresh_token(self) -> str:
        stored = self.store.load(self.owner, self.seed_digest)
        if stored:
            return stored
        if self.seed_refresh_token is None:
            raise CredentialsConfigError(
                "no refresh token yet",
                profile=self.name,
                hint=f"sign in once with: mailpipe oauth authorize {self.owner}",
            )
        return self.seed_refresh_token.get_secret_value()

    def fetch(self, endpoint: TokenEndpoint) -> Token:
        current = self.current_refresh_token()
        basic = None
        if self.client_secret is not None and self.client_auth == "basic":
            basic = (self.client_id, self.client_secret.get_secret_value())
        response = endpoint.request(
            self.token_url,
            lambda: self._form(current),
            profile=self.name,
            grant="refresh_token",
            ca_file=self.ca_file,
            basic_auth=basic,
        )
        # Google and some others keep the old refresh token and send none back.
        if response.refresh_token and response.refresh_token != current:
            self.store.save(self.owner, self.seed_digest, response.refresh_token)
        return response.token

    def _form(self, refresh_token: str) -> Mapping[str, str]:
        form = {
            "grant_type": "refresh_token",
            "client_id": self.client_id,
            "refresh_token": refresh_token,
        }
        if self.scope:
            form["scope"] = self.scope
        if self.redirect_uri:
            form["redirect_uri"] = self.redirect_uri
        if self.client_secret is not None and self.client_auth == "body":
            form["client_secret"] = self.client_secret.get_secret_value()
        return form
