"""Provider presets: what `provider = "microsoft365" | "google_workspace"` fills in.

Sources: Microsoft Learn, "Authenticate an IMAP, POP or SMTP connection using
OAuth" and "Exchange Online limits" (SMTP submission: 30 messages a minute,
10,000 recipients a day, 3 connections per mailbox); Google's service-account
guide and Workspace sending limits (support.google.com/a/answer/166852).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

ProviderName = Literal["microsoft365", "google_workspace", "generic"]
GrantType = Literal["client_credentials", "refresh_token", "service_account"]
Security = Literal["starttls", "tls", "none"]
TransportName = Literal["smtp", "graph"]


@dataclass(frozen=True)
class GraphPreset:
    """What ``transport = "graph"`` changes (Microsoft Graph ``sendMail``)."""

    url: str = "https://graph.microsoft.com/v1.0"
    # A token is for one resource: Graph's, not Exchange's SMTP.
    scopes: Mapping[str, str] = field(
        default_factory=lambda: {
            "client_credentials": "https://graph.microsoft.com/.default",
            "refresh_token": "https://graph.microsoft.com/Mail.Send offline_access",
        }
    )
    # Outlook's throttling: 4 concurrent requests per app per mailbox.
    max_connections: int = 4
    # One request may carry 4 MB; the MIME message goes base64-encoded (4/3 larger).
    max_message_bytes: int = 3_000_000


@dataclass(frozen=True)
class Preset:
    host: str | None = None
    port: int | None = None
    security: Security | None = None
    # "{tenant}" is replaced by the profile's tenant.
    token_url: str | None = None
    # Where a user signs in for a delegated refresh token (mailpipe oauth authorize).
    authorize_url: str | None = None
    device_authorization_url: str | None = None
    authorize_params: Mapping[str, str] = field(default_factory=dict)
    scopes: Mapping[str, str] = field(default_factory=dict)
    grants: frozenset[str] = frozenset({"client_credentials", "refresh_token", "service_account"})
    rate_per_minute: int | None = None
    rate_per_day: int | None = None
    recipients_per_day: int | None = None
    max_connections: int | None = None
    max_recipients: int = 100
    graph: GraphPreset | None = None


PRESETS: Mapping[str, Preset] = {
    "microsoft365": Preset(
        host="smtp.office365.com",
        port=587,
        security="starttls",  # Exchange Online offers AUTH only after STARTTLS on 587
        token_url="https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token",
        authorize_url="https://login.microsoftonline.com/{tenant}/oauth2/v2.0/authorize",
        device_authorization_url="https://login.microsoftonline.com/{tenant}/oauth2/v2.0/devicecode",
        scopes={
            "client_credentials": "https://outlook.office365.com/.default",
            # One resource per request: adding Graph scopes gives AADSTS28000.
            "refresh_token": "https://outlook.office.com/SMTP.Send offline_access",
        },
        grants=frozenset({"client_credentials", "refresh_token"}),
        rate_per_minute=30,
        recipients_per_day=10_000,  # the next one gets "554 5.2.0 …SubmissionQuotaExceeded"
        max_connections=3,  # the 4th gets "432 4.3.2 Concurrent connections limit exceeded"
        max_recipients=500,
        # Exchange Online's mailbox limits (30 a minute, 10,000 recipients a day) hold
        # for Graph too, and are tighter than Graph's 10,000 requests per 10 minutes.
        graph=GraphPreset(),
    ),
    "google_workspace": Preset(
        host="smtp.gmail.com",
        port=587,
        security="starttls",
        token_url="https://oauth2.googleapis.com/token",
        authorize_url="https://accounts.google.com/o/oauth2/v2/auth",
        # Google's device flow does not allow the Gmail scope: no device_authorization_url.
        # Without these two Google issues no refresh token, or none on a second sign-in.
        authorize_params={"access_type": "offline", "prompt": "consent"},
        # The only scope Gmail's SMTP accepts.
        scopes={
            "service_account": "https://mail.google.com/",
            "refresh_token": "https://mail.google.com/",
        },
        grants=frozenset({"service_account", "refresh_token"}),
        rate_per_day=2000,
        max_recipients=100,
    ),
    "generic": Preset(),
}

# Microsoft's multi-tenant aliases; app-only tokens need the tenant itself.
MICROSOFT_TENANT_ALIASES = frozenset({"common", "organizations", "consumers"})
DEFAULT_PORTS: Mapping[str, int] = {"starttls": 587, "tls": 465, "none": 25}


@dataclass(frozen=True)
class BouncePreset:
    """The provider's IMAP server and the scope of a token that may read the mailbox."""

    host: str
    app_scope: str  # client credentials (an app granted the mailbox)
    user_scope: str  # delegated, or a service account acting as the user

    def scope(self, grant: GrantType) -> str:
        return self.app_scope if grant == "client_credentials" else self.user_scope


BOUNCE_PRESETS: dict[str, BouncePreset] = {
    # IMAP.AccessAsApp for an app (its service principal granted the mailbox);
    # IMAP.AccessAsUser.All for a signed-in user. Learn: "Authenticate an IMAP,
    # POP or SMTP connection using OAuth".
    "microsoft365": BouncePreset(
        host="outlook.office365.com",
        app_scope="https://outlook.office365.com/.default",
        user_scope="https://outlook.office.com/IMAP.AccessAsUser.All offline_access",
    ),
    # One scope covers SMTP and IMAP.
    "google_workspace": BouncePreset(
        host="imap.gmail.com",
        app_scope="https://mail.google.com/",
        user_scope="https://mail.google.com/",
    ),
}
