"""Turn the ``[profiles.NAME]`` tables of the parsed profiles file into frozen, resolved profiles.

``profiles_document`` reads and parses the file. Everything is checked at
load: a broken file fails with one line per problem, naming the profile and
the field, so a person fixes it all in one go. Secrets
come inline, from ``*_env`` (an environment variable) or ``*_file``, and are
held as ``SecretStr`` from then on.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, urlsplit

from pydantic import SecretStr, ValidationError

from worker.addresses import address_problem
from worker.credentials.presets import (
    BOUNCE_PRESETS,
    DEFAULT_PORTS,
    MICROSOFT_TENANT_ALIASES,
    PRESETS,
    GraphPreset,
    Preset,
)
from worker.credentials.profile_secrets import SecretReader
from worker.credentials.profile_table import ProfileSpec
from worker.credentials.profiles import (
    BounceMailbox,
    OAuthConfig,
    Profile,
    Profiles,
    ProfilesFileError,
    is_loopback,
)
from worker.errors import ConfigError

# Whole strings (fullmatch): "$" alone would let a trailing newline through.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def check_profiles(
    document: Mapping[str, Any], path: Path, env: Mapping[str, str], *, secrets: bool = True
) -> Profiles:
    """Check every profile of the parsed file at ``path``; ProfilesFileError lists all problems.

    ``secrets=False`` (producers) checks how each secret is given but reads
    none: no environment variable, key file or certificate is needed, and the
    profiles carry no secret.
    """
    tables = document.get("profiles")
    if not isinstance(tables, dict) or not tables:
        raise ConfigError(f"{path}: no [profiles.NAME] tables")
    problems: list[str] = []
    profiles: dict[str, Profile] = {}
    for name, table in tables.items():
        resolver = _Resolver(name, path.parent, env, secrets=secrets)
        profile = resolver.resolve(table)
        problems.extend(resolver.problems)
        if profile is not None and not resolver.problems:
            profiles[name] = profile
    if not problems:
        problems = _fallback_problems(tables, profiles)
    if problems:
        raise ProfilesFileError(path, problems)
    return Profiles(path=path, by_name=profiles)


def _fallback_problems(tables: Mapping[str, Any], profiles: Mapping[str, Profile]) -> list[str]:
    """Each ``fallback`` names other profiles, and following them never comes back."""
    problems = []
    for name, profile in profiles.items():
        for other in profile.fallback:
            if other == name or other not in tables:
                what = "itself" if other == name else f"unknown profile {other!r}"
                known = ", ".join(sorted(set(tables) - {name})) or "none"
                problems.append(
                    f"profile '{name}', field 'fallback': names {what} (profiles: {known})"
                )
    if problems:
        return problems
    for name in profiles:
        cycle = _cycle_from(name, profiles, (name,))
        if cycle and cycle[0] == min(cycle[:-1]):  # each cycle once, from its first name
            problems.append(f"profile '{name}', field 'fallback': a cycle ({' → '.join(cycle)})")
    return problems


def _cycle_from(
    name: str, profiles: Mapping[str, Profile], path: tuple[str, ...]
) -> tuple[str, ...] | None:
    for other in profiles[name].fallback:
        if other == path[0]:
            return (*path, other)
        if other not in path:
            found = _cycle_from(other, profiles, (*path, other))
            if found:
                return found
    return None


class _Resolver(SecretReader):
    """Turns one table into a Profile, collecting every problem on the way."""

    def resolve(self, table: object) -> Profile | None:
        if not _NAME.fullmatch(self.name):
            self.problem(None, "names may use letters, digits, '.', '_' and '-' (64 at most)")
        if not isinstance(table, dict):
            self.problem(None, "must be a table of settings")
            return None
        try:
            spec = ProfileSpec.model_validate(table)
        except ValidationError as exc:
            for error in exc.errors():
                self._validation_problem(error)
            return None
        preset = PRESETS[spec.provider]
        if address_problem(spec.from_email):
            self.problem("from_email", "not an email address")
        host = spec.host or preset.host
        security = spec.security or preset.security or "starttls"
        if host is None:
            self.problem("host", "missing (required for provider 'generic')")
        elif spec.allow_plaintext_auth and not is_loopback(host):
            self.problem(
                "allow_plaintext_auth",
                "only for a loopback host: credentials would cross the network",
            )
        elif security == "none" and not spec.allow_plaintext_auth:
            self.problem(
                "security",
                "'none' would send credentials unencrypted: use starttls or tls "
                "(allow_plaintext_auth = true only for a loopback test server)",
            )
        password = None
        oauth = None
        if spec.auth == "password":
            password = self.secret(spec, "password", required=True)
        else:
            oauth = self.oauth(spec, preset)
        self.check_connection(spec)
        graph = self.graph(spec, preset)
        if self.problems or host is None:
            return None
        username = spec.username or (oauth.subject if oauth else None) or spec.from_email
        max_connections = spec.max_connections or preset.max_connections
        max_message_bytes = spec.max_message_bytes
        if graph is not None:
            max_connections = spec.max_connections or graph.max_connections
            max_message_bytes = max_message_bytes or graph.max_message_bytes
        return Profile(
            name=self.name,
            provider=spec.provider,
            transport=spec.transport,
            host=host,
            port=spec.port or preset.port or DEFAULT_PORTS[security],
            security=security,
            ca_file=self.path(spec.ca_file) if spec.ca_file else None,
            from_email=spec.from_email,
            from_name=spec.from_name,
            auth=spec.auth,
            username=username,
            password=password,
            sasl=spec.sasl,
            oauth=oauth,
            rate_per_minute=spec.rate_per_minute or preset.rate_per_minute,
            rate_per_day=spec.rate_per_day or preset.rate_per_day,
            recipients_per_day=spec.recipients_per_day or preset.recipients_per_day,
            max_connections=max_connections,
            max_recipients=spec.max_recipients or preset.max_recipients,
            max_message_bytes=max_message_bytes,
            ehlo_name=spec.ehlo_name,
            timeout_seconds=spec.timeout_seconds,
            sasl_initial_response=spec.sasl_initial_response,
            pipeline_messages=spec.pipeline_messages,
            dsn=spec.dsn,
            fallback=tuple(spec.fallback),
            allow_plaintext_auth=spec.allow_plaintext_auth,
            graph_url=(spec.graph_url or graph.url).rstrip("/") if graph else None,
            save_to_sent_items=spec.save_to_sent_items,
            bounces=self.bounces(spec, username or spec.from_email, oauth, graph),
        )

    def bounces(
        self,
        spec: ProfileSpec,
        username: str,
        oauth: OAuthConfig | None,
        graph: GraphPreset | None = None,
    ) -> BounceMailbox | None:
        """The mailbox of ``[profiles.NAME.bounces]``, presets applied (None: not read)."""
        table = spec.bounces
        if table is None:
            return None
        if graph is not None:
            return self.graph_bounces(spec, username, oauth, graph)
        preset = BOUNCE_PRESETS.get(spec.provider)
        host = table.imap_host or (preset.host if preset else None)
        if host is None:
            self.problem("bounces.imap_host", "missing (required for provider 'generic')")
            return None
        scope = None
        if oauth is not None:
            preset_scope = preset.scope(oauth.grant) if preset else None
            scope = table.scope or preset_scope or oauth.scope
        return BounceMailbox(
            host=host,
            port=table.imap_port,
            folder=table.folder,
            move_to=table.move_to,
            username=table.username or username,
            scope=scope,
        )

    def graph_bounces(
        self, spec: ProfileSpec, username: str, oauth: OAuthConfig | None, graph: GraphPreset
    ) -> BounceMailbox | None:
        """A ``transport = "graph"`` profile reads its reports through Graph, with its own token."""
        table = spec.bounces
        assert table is not None
        for field_name in ("imap_host", "scope"):
            if getattr(table, field_name) is not None:
                self.problem(f"bounces.{field_name}", 'not for transport = "graph": reports '
                             "are read through Graph with the profile's own token")  # fmt: skip
        parts = _url_parts(spec.graph_url or graph.url)
        if parts is None or not parts.hostname:
            return None  # graph_url's problem is already listed
        try:
            port = parts.port or 443
        except ValueError:
            self.problem("graph_url", "has no valid port")
            return None
        return BounceMailbox(
            host=parts.hostname,
            port=port,
            # Graph's well-known folder names are lower-case; "INBOX" is IMAP's.
            folder="inbox" if table.folder == "INBOX" else table.folder,
            move_to=table.move_to,
            username=table.username or username,
            scope=oauth.scope if oauth else None,
        )

    def graph(self, spec: ProfileSpec, preset: Preset) -> GraphPreset | None:
        """The Graph preset of a ``transport = "graph"`` profile (None for SMTP)."""
        if spec.transport != "graph":
            if spec.graph_url is not None:
                self.problem("graph_url", 'only for transport = "graph"')
            return None
        if preset.graph is None:
            self.problem("transport", "'graph' is Microsoft Graph: only for provider microsoft365")
            return None
        if spec.auth != "oauth":
            self.problem("auth", 'Microsoft Graph takes OAuth tokens only: use auth = "oauth"')
        if spec.graph_url is not None:
            parts = _url_parts(spec.graph_url)
            if parts is None or parts.scheme != "https" or not parts.hostname:
                self.problem("graph_url", "must be an https:// URL")
        limit = 4 * preset.graph.max_message_bytes // 3  # base64 of the largest message
        if spec.max_message_bytes is not None and spec.max_message_bytes > limit:
            self.problem(
                "max_message_bytes",
                f"Graph takes at most {preset.graph.max_message_bytes} bytes per message "
                "(4 MB per request, base64-encoded)",
            )
        return preset.graph

    def check_connection(self, spec: ProfileSpec) -> None:
        if spec.ca_file:
            self.check_ca_file(self.path(spec.ca_file))
        # TOML has inf; a socket timeout cannot be infinite.
        if spec.timeout_seconds is not None and not math.isfinite(spec.timeout_seconds):
            self.problem("timeout_seconds", "must be a finite number of seconds")

    def _validation_problem(self, error: Any) -> None:
        loc = error.get("loc") or ()
        field_name = str(loc[0]) if loc else None
        if error.get("type") == "extra_forbidden":
            self.problem(field_name, "unknown field (check its spelling)")
        elif error.get("type") == "missing":
            self.problem(field_name, "missing")
        else:
            # pydantic's message names the expected values; the input is
            # left out because it could be a secret.
            self.problem(field_name, str(error.get("msg")))

    def oauth(self, spec: ProfileSpec, preset: Preset) -> OAuthConfig | None:
        if spec.grant is None:
            self.problem("grant", "missing (client_credentials, refresh_token or service_account)")
            return None
        if spec.grant not in preset.grants:
            allowed = ", ".join(sorted(preset.grants))
            self.problem("grant", f"'{spec.grant}' is not offered by {spec.provider} ({allowed})")
            return None
        token_url = self.token_url(spec, preset)
        scopes = (
            preset.graph.scopes if spec.transport == "graph" and preset.graph else preset.scopes
        )
        scope = spec.scope or scopes.get(spec.grant)
        if spec.grant == "client_credentials":
            return self.client_credentials(spec, token_url, scope)
        if spec.grant == "refresh_token":
            return self.refresh_token(spec, preset, token_url, scope)
        return self.service_account(spec, token_url, scope)

    def token_url(self, spec: ProfileSpec, preset: Preset) -> str:
        url = spec.token_url
        if url is None and preset.token_url and "{tenant}" in preset.token_url:
            if not spec.tenant:
                self.problem("tenant", "missing (your Entra tenant ID or domain)")
                return ""
            if spec.grant == "client_credentials" and spec.tenant in MICROSOFT_TENANT_ALIASES:
                self.problem(
                    "tenant",
                    f"'{spec.tenant}' cannot issue app-only tokens: use your tenant ID or domain",
                )
            url = preset.token_url.format(tenant=spec.tenant)
        url = url or preset.token_url
        if url is None:
            self.problem("token_url", "missing (the provider's OAuth 2.0 token endpoint)")
            return ""
        self.check_endpoint_url("token_url", url, spec.allow_insecure_token_url)
        return url

    def check_endpoint_url(self, field_name: str, url: str, allow_insecure: bool) -> None:
        """An OAuth endpoint: https, or plain http on loopback when allowed."""
        parts = _url_parts(url)
        if parts is None:
            self.problem(field_name, "not a valid URL")
            return
        if parts.scheme == "https" and parts.hostname:
            return
        if parts.scheme == "http" and parts.hostname and is_loopback(parts.hostname):
            if not allow_insecure:
                self.problem(
                    field_name,
                    "plain http: set allow_insecure_token_url = true (loopback test servers only)",
                )
            return
        self.problem(field_name, "must be an https:// URL")

    def client_credentials(
        self, spec: ProfileSpec, token_url: str, scope: str | None
    ) -> OAuthConfig | None:
        self.require(spec, "client_id")
        secret = self.secret(spec, "client_secret")
        certificate = None
        if spec.client_certificate_file and self.secrets:
            certificate = self.read_file("client_certificate_file", spec.client_certificate_file)
            if certificate and secret:
                self.problem("client_certificate_file", "give a client secret or a certificate")
            elif certificate:
                # Imported for a profile with a key only: reading the file needs no key library.
                from providers.keys import ClientCertificate

                self.check_key(
                    "client_certificate_file",
                    lambda: ClientCertificate.from_pem(certificate or ""),
                )
        elif not _given(spec, "client_secret") and not spec.client_certificate_file:
            self.problem("client_secret", "missing (or client_certificate_file)")
        return OAuthConfig(
            grant="client_credentials",
            token_url=token_url,
            token_ca_file=self.token_ca_file(spec),
            scope=scope,
            client_id=spec.client_id,
            client_secret=secret,
            client_auth=spec.client_auth,
            client_certificate=SecretStr(certificate) if certificate else None,
            assertion_algorithm=spec.assertion_algorithm,
        )

    def refresh_token(
        self, spec: ProfileSpec, preset: Preset, token_url: str, scope: str | None
    ) -> OAuthConfig | None:
        self.require(spec, "client_id")
        tenant = spec.tenant or ""
        authorize_url = spec.authorize_url or (preset.authorize_url or "").format(tenant=tenant)
        device_url = spec.device_authorization_url or (
            preset.device_authorization_url or ""
        ).format(tenant=tenant)
        for name, url in (("authorize_url", spec.authorize_url),
                          ("device_authorization_url", spec.device_authorization_url)):  # fmt: skip
            if url is not None:
                self.check_endpoint_url(name, url, spec.allow_insecure_token_url)
        return OAuthConfig(
            grant="refresh_token",
            token_url=token_url,
            token_ca_file=self.token_ca_file(spec),
            scope=scope,
            client_id=spec.client_id,
            client_secret=self.secret(spec, "client_secret"),
            client_auth=spec.client_auth,
            # None: signed in with `mailpipe oauth authorize`, kept in the store.
            refresh_token=self.secret(spec, "refresh_token"),
            redirect_uri=spec.redirect_uri,
            authorize_url=authorize_url or None,
            device_authorization_url=device_url or None,
            authorize_params=dict(preset.authorize_params),
        )

    def service_account(
        self, spec: ProfileSpec, token_url: str, scope: str | None
    ) -> OAuthConfig | None:
        key_json = self.service_account_json(spec)
        private_key = self.secret(spec, "private_key")
        pasted = self.secret(spec, "client_secret")
        # Users of other tools paste the key (PEM or the whole JSON) into
        # "client secret"; take it from there when nothing else is given.
        from providers.service_account import ServiceAccountKey  # for its profiles only

        if pasted is not None and key_json is None and private_key is None:
            text = pasted.get_secret_value().lstrip()
            key_json, private_key = (pasted, None) if text.startswith("{") else (None, pasted)
        if key_json is not None and private_key is not None:
            self.problem("private_key", "give a service account key file or a private key")
        elif key_json is not None:
            self.check_key(
                "service_account_file",
                lambda: ServiceAccountKey.from_json(key_json.get_secret_value()),
            )
        elif private_key is not None:
            self.require(spec, "client_email")
            self.check_key(
                "private_key",
                lambda: ServiceAccountKey.from_pem(
                    private_key.get_secret_value(), client_email=spec.client_email or ""
                ),
            )
        elif not (
            _given(spec, "service_account")
            or _given(spec, "private_key")
            or _given(spec, "client_secret")
        ):
            self.problem("service_account_file", "missing (or private_key with client_email)")
        if spec.subject is not None and address_problem(spec.subject):
            self.problem("subject", "not an email address")
        if spec.username and spec.username != (spec.subject or spec.from_email):
            # Gmail answers 535 when the XOAUTH2 user= is not the JWT's sub.
            self.problem("username", "must equal subject (or from_email) for a service account")
        return OAuthConfig(
            grant="service_account",
            token_url=token_url,
            token_ca_file=self.token_ca_file(spec),
            scope=scope,
            service_account_json=key_json,
            private_key=private_key,
            private_key_id=spec.private_key_id,
            client_email=spec.client_email,
            subject=spec.subject or spec.from_email,
        )

    def service_account_json(self, spec: ProfileSpec) -> SecretStr | None:
        if spec.service_account_file and spec.service_account_env:
            self.problem("service_account_file", "give only one of file and _env")
            return None
        if not self.secrets:
            return None
        if spec.service_account_file:
            text = self.read_file("service_account_file", spec.service_account_file)
            return SecretStr(text) if text is not None else None
        if spec.service_account_env:
            return self.from_env("service_account_env", spec.service_account_env)
        return None

    def require(self, spec: ProfileSpec, field_name: str) -> None:
        if not getattr(spec, field_name):
            self.problem(field_name, f"missing (required for grant {spec.grant})")


def _url_parts(url: str) -> SplitResult | None:
    try:
        return urlsplit(url)
    except ValueError:  # e.g. an unclosed [IPv6 address]
        return None


def _given(spec: ProfileSpec, base: str) -> bool:
    """Whether the table sets ``base`` in any form (inline, _env, _file)."""
    return any(
        getattr(spec, name, None) is not None for name in (base, f"{base}_env", f"{base}_file")
    )
