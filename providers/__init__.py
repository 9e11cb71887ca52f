"""Turn a profile's credentials into something SMTP AUTH accepts.

One module per grant; none of them knows about Celery, Redis or SMTP. The
worker builds a grant from a profile and calls ``fetch`` through a shared
``TokenEndpoint``.

The names below are imported on first use (PEP 562): ``providers.errors``,
which every layer's errors derive from, then costs no HTTP client, JWT or
key library at start-up (a command that reads the database needs none).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from providers.lazy import lazy_names

if TYPE_CHECKING:
    from providers.assertions import client_assertion, service_account_assertion
    from providers.backoff import RetryPolicy
    from providers.client_credentials import ClientCredentialsGrant
    from providers.errors import (
        CredentialsConfigError,
        OAuthErrorDetails,
        PermanentProviderError,
        ProviderError,
        TransientProviderError,
    )
    from providers.keys import ClientCertificate
    from providers.password import PasswordCredentials
    from providers.refresh_token import RefreshTokenGrant, RefreshTokenStore
    from providers.service_account import (
        GMAIL_SCOPE,
        GOOGLE_TOKEN_URL,
        ServiceAccountGrant,
        ServiceAccountKey,
    )
    from providers.token import Grant, Token
    from providers.token_endpoint import TokenEndpoint, TokenResponse

# Each public name and the module that defines it.
_HOMES = {
    "GMAIL_SCOPE": "providers.service_account",
    "GOOGLE_TOKEN_URL": "providers.service_account",
    "ClientCertificate": "providers.keys",
    "ClientCredentialsGrant": "providers.client_credentials",
    "CredentialsConfigError": "providers.errors",
    "Grant": "providers.token",
    "OAuthErrorDetails": "providers.errors",
    "PasswordCredentials": "providers.password",
    "PermanentProviderError": "providers.errors",
    "ProviderError": "providers.errors",
    "RefreshTokenGrant": "providers.refresh_token",
    "RefreshTokenStore": "providers.refresh_token",
    "RetryPolicy": "providers.backoff",
    "ServiceAccountGrant": "providers.service_account",
    "ServiceAccountKey": "providers.service_account",
    "Token": "providers.token",
    "TokenEndpoint": "providers.token_endpoint",
    "TokenResponse": "providers.token_endpoint",
    "TransientProviderError": "providers.errors",
    "client_assertion": "providers.assertions",
    "service_account_assertion": "providers.assertions",
}

__all__ = [
    "GMAIL_SCOPE",
    "GOOGLE_TOKEN_URL",
    "ClientCertificate",
    "ClientCredentialsGrant",
    "CredentialsConfigError",
    "Grant",
    "OAuthErrorDetails",
    "PasswordCredentials",
    "PermanentProviderError",
    "ProviderError",
    "RefreshTokenGrant",
    "RefreshTokenStore",
    "RetryPolicy",
    "ServiceAccountGrant",
    "ServiceAccountKey",
    "Token",
    "TokenEndpoint",
    "TokenResponse",
    "TransientProviderError",
    "client_assertion",
    "service_account_assertion",
]


__getattr__, __dir__ = lazy_names(__name__, _HOMES)
