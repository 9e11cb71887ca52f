"""The one place that knows how a profile's fields become a ``providers`` grant."""

from __future__ import annotations

from pydantic import SecretStr

from providers import (
    ClientCertificate,
    ClientCredentialsGrant,
    Grant,
    RefreshTokenGrant,
    RefreshTokenStore,
    ServiceAccountGrant,
    ServiceAccountKey,
)
from providers.authorization import AuthorizationClient
from worker.credentials.profiles import OAuthConfig, Profile
from worker.errors import ConfigError


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
            ca_file=_ca(oauth),
        )
    if oauth.grant == "refresh_token":
        return RefreshTokenGrant(
            name=profile.name,
            token_url=oauth.token_url,
            client_id=oauth.client_id or "",
            scope=oauth.scope,
            seed_refresh_token=oauth.refresh_token,
            store=refresh_tokens,
            client_secret=oauth.client_secret,
            client_auth=oauth.client_auth,
            redirect_uri=oauth.redirect_uri,
            ca_file=_ca(oauth),
        )
    return ServiceAccountGrant(
        name=profile.name,
        key=_service_account_key(oauth),
        subject=oauth.subject or profile.from_email,
        scope=oauth.scope or "https://mail.google.com/",
        token_url=oauth.token_url,
        ca_file=_ca(oauth),
    )


def authorization_client(profile: Profile) -> AuthorizationClient:
    """The app a user signs in to for this delegated profile's first refresh token."""
    oauth = profile.oauth
    if oauth is None or oauth.grant != "refresh_token":
        uses = f"grant {oauth.grant}" if oauth else "a password"
        raise ConfigError(
            f"profile {profile.name} uses {uses}: only delegated profiles "
            '(grant = "refresh_token") sign in for a refresh token'
        )
    scope = oauth.scope or ""
    if profile.provider == "microsoft365" and "offline_access" not in scope.split():
        scope = f"{scope} offline_access".strip()  # else Microsoft issues no refresh token
    return AuthorizationClient(
        name=profile.name,
        client_id=oauth.client_id or "",
        scope=scope,
        token_url=oauth.token_url,
        authorize_url=oauth.authorize_url,
        device_authorization_url=oauth.device_authorization_url,
        client_secret=oauth.client_secret,
        authorize_params=oauth.authorize_params,
        ca_file=_ca(oauth),
    )


def _ca(oauth: OAuthConfig) -> str | None:
    return str(oauth.token_ca_file) if oauth.token_ca_file else None


def _service_account_key(oauth: OAuthConfig) -> ServiceAccountKey:
    if oauth.service_account_json is not None:
        return ServiceAccountKey.from_json(oauth.service_account_json.get_secret_value())
    return ServiceAccountKey.from_pem(
        (oauth.private_key or SecretStr("")).get_secret_value(),
        client_email=oauth.client_email or "",
        private_key_id=oauth.private_key_id,
    )
