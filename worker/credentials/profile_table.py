"""One ``[profiles.NAME]`` table exactly as written, before presets and secrets are applied."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from worker.credentials.presets import GrantType, ProviderName, Security, TransportName


class BouncesSpec(BaseModel):
    """``[profiles.NAME.bounces]``: the mailbox the profile's reports come back to."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    imap_host: str | None = None
    imap_port: int = Field(default=993, ge=1, le=65535)
    folder: str = "INBOX"
    # Where a handled report is moved (IMAP MOVE); None: left where it is.
    move_to: str | None = None
    scope: str | None = None
    # The mailbox to log in to; the profile's own (its SMTP user) by default.
    username: str | None = None


class ProfileSpec(BaseModel):
    """One ``[profiles.NAME]`` table exactly as written; unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: ProviderName = "generic"
    transport: TransportName = "smtp"
    host: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    security: Security | None = None
    ca_file: str | None = None
    from_email: str
    from_name: str | None = None
    auth: Literal["oauth", "password"]
    sasl: Literal["xoauth2", "oauthbearer"] | None = None
    username: str | None = None
    password: str | None = None
    password_env: str | None = None
    password_file: str | None = None
    grant: GrantType | None = None
    tenant: str | None = None
    token_url: str | None = None
    token_ca_file: str | None = None
    scope: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    client_secret_env: str | None = None
    client_secret_file: str | None = None
    client_auth: Literal["body", "basic"] = "body"
    client_certificate_file: str | None = None
    assertion_algorithm: Literal["PS256", "RS256"] = "PS256"
    refresh_token: str | None = None
    refresh_token_env: str | None = None
    refresh_token_file: str | None = None
    redirect_uri: str | None = None
    authorize_url: str | None = None
    device_authorization_url: str | None = None
    service_account_file: str | None = None
    service_account_env: str | None = None
    private_key: str | None = None
    private_key_env: str | None = None
    private_key_file: str | None = None
    private_key_id: str | None = None
    client_email: str | None = None
    subject: str | None = None
    rate_per_minute: int | None = Field(default=None, ge=1)
    rate_per_day: int | None = Field(default=None, ge=1)
    recipients_per_day: int | None = Field(default=None, ge=1)
    max_connections: int | None = Field(default=None, ge=1)
    max_recipients: int | None = Field(default=None, ge=1)
    max_message_bytes: int | None = Field(default=None, ge=1024)
    ehlo_name: str | None = None
    timeout_seconds: float | None = Field(default=None, gt=0)
    sasl_initial_response: bool = True
    pipeline_messages: bool = False
    dsn: bool = True
    fallback: list[str] = Field(default_factory=list)
    allow_insecure_token_url: bool = False
    allow_plaintext_auth: bool = False
    # Microsoft Graph sendMail (transport = "graph").
    graph_url: str | None = None
    save_to_sent_items: bool = True
    # Reports read from the sending mailbox over IMAP (opt in).
    bounces: BouncesSpec | None = None
