"""Turn a profile's credentials into something SMTP AUTH accepts.

One module per grant; none of them knows about Celery, Redis or SMTP. The
worker builds a grant from a profile and calls ``fetch`` through a shared
``TokenEndpoint``.
"""

from providers.assertions import client_assertion, service_account_assertion
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
from providers.token_endpoint import RetryPolicy, TokenEndpoint, TokenResponse

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
