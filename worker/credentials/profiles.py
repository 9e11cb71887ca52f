"""A profile: everything needed to send as one sender, resolved and frozen.

``profiles_document`` reads the TOML profiles file and ``profiles_file``
checks its profiles; presets fill in what a provider implies.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, SecretStr

from worker.credentials.presets import GrantType, ProviderName, Security, TransportName
from worker.errors import ConfigError, UnknownProfileError


class OAuthConfig(BaseModel):
    """Everything a grant needs, resolved (presets applied, secrets read)."""

    model_config = ConfigDict(frozen=True)

    grant: GrantType
    token_url: str
    scope: str | None
    # The CA of a token endpoint with a private certificate authority.
    token_ca_file: Path | None = None
    client_id: str | None = None
    client_secret: SecretStr | None = None
    client_auth: Literal["body", "basic"] = "body"
    client_certificate: SecretStr | None = None
    assertion_algorithm: Literal["PS256", "RS256"] = "PS256"
    refresh_token: SecretStr | None = None
    redirect_uri: str | None = None
    # Signing in for the first refresh token (mailpipe oauth authorize).
    authorize_url: str | None = None
    device_authorization_url: str | None = None
    authorize_params: dict[str, str] = {}
    # Service account: the JSON key, or a PEM key with client_email.
    service_account_json: SecretStr | None = None
    private_key: SecretStr | None = None
    private_key_id: str | None = None
    client_email: str | None = None
    subject: str | None = None


class BounceMailbox(BaseModel):
    """Where a profile's delivery reports are read: IMAP over TLS, presets applied."""

    model_config = ConfigDict(frozen=True)

    host: str
    port: int = 993
    folder: str = "INBOX"
    move_to: str | None = None
    username: str
    # The OAuth scope of the mailbox's token (None: password IMAP).
    scope: str | None = None


class Profile(BaseModel):
    """One sender, ready to use."""

    model_config = ConfigDict(frozen=True)

    name: str
    provider: ProviderName
    transport: TransportName = "smtp"
    host: str
    port: int
    security: Security
    ca_file: Path | None = None
    from_email: str
    from_name: str | None = None
    auth: Literal["oauth", "password"]
    # SMTP AUTH identity: the XOAUTH2 ``user=`` (the mailbox) or the login name.
    username: str
    password: SecretStr | None = None
    sasl: Literal["xoauth2", "oauthbearer"] | None = None
    oauth: OAuthConfig | None = None
    rate_per_minute: int | None = None
    rate_per_day: int | None = None
    recipients_per_day: int | None = None
    # Connections open at once across all workers (Microsoft 365 allows 3).
    max_connections: int | None = None
    max_recipients: int = 100
    max_message_bytes: int | None = None
    ehlo_name: str | None = None
    timeout_seconds: float | None = None
    # Some servers (Dovecot-based) refuse a long AUTH line: wait for the 334.
    sasl_initial_response: bool = True
    # A message's content in the same write as the next message's MAIL, RCPT and DATA
    # (RFC 2920 §3.1): one round trip per message in a run, but some servers die on it
    # after accepting the message (Dovecot 2.3's submission), which would resend it.
    pipeline_messages: bool = False
    # Ask for delivery status notifications (RFC 3461) where the server offers DSN:
    # failures and delays come back to the sending mailbox, naming the job (ENVID).
    dsn: bool = True
    # Profiles a page is sent through, in order, when this one cannot deliver it.
    fallback: tuple[str, ...] = ()
    allow_plaintext_auth: bool = False
    # transport = "graph": the Graph API root, and whether Sent Items keeps a copy.
    graph_url: str | None = None
    save_to_sent_items: bool = True
    # ``[profiles.NAME.bounces]``: reports are read from this mailbox; None: not read.
    bounces: BounceMailbox | None = None


class ProfilesFileError(ConfigError):
    """The profiles file has problems; ``str()`` has one line per problem."""

    def __init__(self, path: Path, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        super().__init__("\n".join(f"{path}: {p}" for p in problems))


@dataclass(frozen=True)
class Profiles:
    """The loaded profiles file."""

    path: Path
    by_name: Mapping[str, Profile] = field(default_factory=dict)

    def get(self, name: str) -> Profile:
        try:
            return self.by_name[name]
        except KeyError:
            raise UnknownProfileError(name, list(self.by_name)) from None

    def __iter__(self) -> Iterator[Profile]:
        return iter(self.by_name.values())

    def __len__(self) -> int:
        return len(self.by_name)


def is_loopback(host: str) -> bool:
    """localhost, 127.0.0.0/8 or ::1."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
