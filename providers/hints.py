"""One-line advice for the token-endpoint errors users hit most.

Classification (transient or permanent) never depends on these: Microsoft asks
clients not to branch on AADSTS numbers, so the numbers only choose the advice.
Sources: Microsoft identity platform error reference
(learn.microsoft.com/entra/identity-platform/reference-error-codes) and its
service-principal troubleshooting page; Google's service-account guide
(developers.google.com/identity/protocols/oauth2/service-account) and the
google-api-php-client issues on delegation and clock skew (#1379, #1429, #783).
"""

from __future__ import annotations

from providers.errors import OAuthErrorDetails

# AADSTS code → what the operator should do.
_MICROSOFT_HINTS: dict[int, str] = {
    7000215: (
        "the client secret is wrong: use the secret's Value (not its Secret ID) "
        "from the app registration's Certificates & secrets"
    ),
    7000222: (
        "the client secret has expired: create a new one under Certificates & secrets "
        "and update the profile"
    ),
    700016: (
        "the application was not found in the tenant: check client_id and tenant, "
        "and that an administrator consented to the app in that tenant"
    ),
    700027: (
        "the certificate assertion was rejected: upload this certificate to the app "
        "registration and check that client_id matches"
    ),
    700082: (
        "the refresh token expired after 90 days without use: the user must sign in "
        "again: {sign_in}"
    ),
    70008: "the refresh token has expired: the user must sign in again: {sign_in}",
    50173: (
        "the grant was revoked (password change or admin action): the user must sign "
        "in again: {sign_in}"
    ),
    28000: (
        "the scope names more than one resource: request only "
        "https://outlook.office.com/SMTP.Send offline_access (no Graph scopes)"
    ),
    70011: "the scope is invalid: use https://outlook.office365.com/.default for app-only SMTP",
    65001: "the app has no consent for this scope: an administrator must grant consent",
    90002: "the tenant was not found: check the tenant ID or domain in the profile",
    # Signing in (mailpipe oauth authorize).
    50011: (
        "the redirect URI is not registered: add the printed http://localhost:PORT/… "
        "redirect under Authentication → Mobile and desktop applications (any port), "
        "or pass --port to match the one registered"
    ),
    50020: (
        "the account is not in this tenant: sign in with an account of the tenant in the "
        "profile, or set tenant to the account's own tenant"
    ),
    500200: (
        "a personal Microsoft account cannot sign in to this app: use a work or school "
        "account, or allow personal accounts in the app registration"
    ),
    9002331: (
        "the app accepts personal Microsoft accounts only: set its supported account types "
        "to include work or school accounts"
    ),
    7000218: (
        "the app is confidential but no client secret was sent: set client_secret, or turn "
        "on 'Allow public client flows' (Authentication) for a public client"
    ),
    700025: (
        "the app is a public client, so no client secret may be sent: remove client_secret "
        "from the profile"
    ),
    54005: "the authorization code was already redeemed: run mailpipe oauth authorize again",
    900023: "the tenant is malformed: use the tenant ID (a GUID) or a verified domain",
}

_CLOCK_SKEW = (
    "the JWT's iat/exp were rejected: this machine's clock is off; run NTP "
    "(timedatectl set-ntp true)"
)


def hint_for(details: OAuthErrorDetails, *, grant: str, profile: str | None = None) -> str | None:
    """Return advice for a failed token request, or None when there is none.

    ``profile``: named in the command a user must run to sign in again.
    """
    sign_in = f"mailpipe oauth authorize {profile or 'PROFILE'}"
    for code in details.error_codes:
        if code in _MICROSOFT_HINTS:
            return _MICROSOFT_HINTS[code].format(sign_in=sign_in)
    description = (details.error_description or "").lower()
    error = details.error or ""
    if details.status == 429:
        return (
            "the token endpoint is throttling this client: tokens are cached, so look "
            "for other processes or profiles sharing the client"
        )
    if error == "unauthorized_client" and grant == "service_account":
        return (
            "domain-wide delegation is missing for this service account's client ID "
            "and scope https://mail.google.com/ (Admin console → Security → API controls; "
            "changes can take up to 24 h)"
        )
    if error == "invalid_grant":
        return _invalid_grant(description, grant, sign_in)
    if error == "invalid_client":
        return "the client ID or client secret is wrong, or the client is disabled"
    if error == "invalid_scope":
        return "the provider rejected the scope: check the profile's scope"
    return None


def _invalid_grant(description: str, grant: str, sign_in: str) -> str | None:
    if "reasonable timeframe" in description or "iat and exp" in description:
        return _CLOCK_SKEW
    if "invalid jwt signature" in description:
        return (
            "the service-account key was rejected: it was deleted or belongs to another "
            "account; download a new JSON key"
        )
    if "email" in description or "user id" in description:
        return "the subject is not a mailbox of the Workspace domain: check from_email/subject"
    if grant != "refresh_token":
        return None
    if "expired or revoked" in description:
        # Google: an app whose consent screen is in "Testing" issues refresh tokens that
        # end after 7 days.
        return (
            "the refresh token expired or was revoked; if it lasted about 7 days, the "
            "Google OAuth app is in Testing: publish it (OAuth consent screen → In "
            f"production), then sign in again: {sign_in}"
        )
    return f"the refresh token is no longer valid: the user must sign in again: {sign_in}"
