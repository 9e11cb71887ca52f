"""Token endpoint answers as Microsoft Entra ID and Google document and send them.

Shapes from Microsoft's "Microsoft identity platform and OAuth 2.0 client
credentials flow" / "refresh tokens" / error-code reference pages, and Google's
"Using OAuth 2.0 for Server to Server Applications" and its client trackers.
"""

from __future__ import annotations

from typing import Any

TRACE_ID = "255d1aef-8c98-452f-ac51-23d051240864"
CORRELATION_ID = "fb3d2015-bc17-4bb9-bb85-30c5cf1aaaa7"


def microsoft_error(status: int, error: str, code: int, text: str) -> tuple[int, dict[str, Any]]:
    """Entra ID's error body: AADSTS code in the description, and the ids to quote to support."""
    return status, {
        "error": error,
        "error_description": (
            f"AADSTS{code}: {text}\r\nTrace ID: {TRACE_ID}\r\n"
            f"Correlation ID: {CORRELATION_ID}\r\nTimestamp: 2026-11-21 10:15:02Z"
        ),
        "error_codes": [code],
        "timestamp": "2026-11-21 10:15:02Z",
        "trace_id": TRACE_ID,
        "correlation_id": CORRELATION_ID,
        "error_uri": f"https://login.microsoftonline.com/error?code={code}",
    }


MS_BAD_SECRET = microsoft_error(
    401,
    "invalid_client",
    7000215,
    "Invalid client secret provided. Ensure the secret being sent in the request is the "
    "client secret value, not the client secret ID, for a secret added to app "
    "'11111111-1111-1111-1111-111111111111'.",
)
MS_EXPIRED_SECRET = microsoft_error(
    401,
    "invalid_client",
    7000222,
    "The provided client secret keys for app '11111111-1111-1111-1111-111111111111' are "
    "expired. Visit the Azure portal to create new keys for your app.",
)
MS_APP_NOT_IN_TENANT = microsoft_error(
    400,
    "unauthorized_client",
    700016,
    "Application with identifier '11111111-1111-1111-1111-111111111111' was not found in "
    "the directory 'contoso'. This can happen if the application has not been installed by "
    "the administrator of the tenant or consented to by any user in the tenant.",
)
MS_REFRESH_TOKEN_INACTIVE = microsoft_error(
    400,
    "invalid_grant",
    700082,
    "The refresh token has expired due to inactivity. The token was issued on "
    "2026-08-01T09:00:00Z and was inactive for 90.00:00:00.",
)
MS_TEMPORARILY_UNAVAILABLE = microsoft_error(
    503, "temporarily_unavailable", 90033, "A transient error has occurred. Please try again."
)

GOOGLE_UNAUTHORIZED_CLIENT = (
    401,
    {
        "error": "unauthorized_client",
        "error_description": (
            "Client is unauthorized to retrieve access tokens using this method, or client "
            "not authorized for any of the scopes requested."
        ),
    },
)
GOOGLE_CLOCK_SKEW = (
    400,
    {
        "error": "invalid_grant",
        "error_description": (
            "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable "
            "timeframe. Check your iat and exp values in the JWT claim."
        ),
    },
)
GOOGLE_BAD_SUBJECT = (400, {"error": "invalid_grant", "error_description": "Not a valid email."})
