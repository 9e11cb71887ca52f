"""``mailpipe profiles``, ``tokens`` and ``secret-key``: the credentials, checked and refreshed."""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import click

from worker.faces.cli_group import MailpipeGroup

if TYPE_CHECKING:
    from worker.credentials import OAuthCredentials, Profile

# Each command imports what it needs when it runs: `mailpipe --help` and the
# light commands start without Celery, Redis, the HTTP client or SQLAlchemy.


@click.group("secret-key", cls=MailpipeGroup, invoke_without_command=True)
@click.pass_context
def secret_key(ctx: click.Context) -> None:
    """Print a new Fernet key for MAILPIPE_SECRET_KEY (or rotate to one)."""
    if ctx.invoked_subcommand is None:
        from cryptography.fernet import Fernet

        click.echo(Fernet.generate_key().decode())


@secret_key.command("rotate")
def secret_key_rotate() -> None:
    """Re-encrypt stored and cached tokens under the first key of MAILPIPE_SECRET_KEY.

    Put the new key first and the old one after it; after this, the old key
    can be removed.
    """
    from worker.runtime import build_runtime
    from worker.store import rotate_stored

    rt = build_runtime()
    stored = rotate_stored(rt.store, rt.settings.fernet())
    cached, dropped = rt.credentials.cache.rotate_key()
    rt.close()
    click.echo(
        f"re-encrypted {stored} stored refresh token(s) and {cached} cached token(s) "
        f"under the first key ({dropped} unreadable cached token(s) dropped); "
        "the other keys can now be removed"
    )


# -- sending -------------------------------------------------------------------


@click.group(cls=MailpipeGroup)
def profiles() -> None:
    """Inspect the SMTP profiles file."""


@profiles.command("list")
def profiles_list() -> None:
    """One line per profile: provider, authentication, server, sender."""
    from worker.credentials.profiles_document import read_profiles_document
    from worker.faces.http.routes import routes_of
    from worker.settings import get_settings

    settings = get_settings()
    document = read_profiles_document(settings.profiles_file, os.environ)
    loaded = document.profiles
    # The routes of the same file are checked too (the HTTP intake would refuse them).
    routes = routes_of(document, settings.callback_policy())
    rows = [("NAME", "PROVIDER", "AUTH", "SERVER", "FROM")]
    rows += [_profile_row(p) for p in loaded]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    for route in routes.values():
        recipients = ", ".join((*route.to, *route.cc)) + (
            f" +{len(route.bcc)} bcc" if route.bcc else ""
        )
        click.echo(f"route {route.name}: profile {route.profile} → {recipients}")


def _profile_row(profile: Profile) -> tuple[str, str, str, str, str]:
    auth = f"oauth/{profile.oauth.grant}" if profile.oauth else "password"
    server = f"{profile.host}:{profile.port} {profile.security}"
    if profile.transport == "graph":
        server = f"{profile.graph_url} (Graph)"
    return (profile.name, profile.provider, auth, server, profile.from_email)


@profiles.command("status")
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="One JSON document.")
def profiles_status(name: str | None, as_json: bool) -> None:
    """Each profile's health without sending: its token, last refresh, refresh token.

    Exits 1 when a profile shown is unhealthy (its last token refresh failed).
    """
    from worker.faces.profile_status import profile_status, status_lines
    from worker.queue import build_producer

    rt = build_producer()
    try:
        chosen = [rt.profiles.get(name)] if name else list(rt.profiles)
        statuses = [profile_status(rt, profile) for profile in chosen]
    finally:
        rt.close()
    if as_json:
        click.echo(json.dumps(statuses, indent=2))
    else:
        for status in statuses:
            for line in status_lines(status):
                click.echo(line)
    sys.exit(1 if any(s["healthy"] is False for s in statuses) else 0)


@profiles.command("check")
@click.argument("name")
@click.option("--send-to", metavar="ADDR", help="Also send a short test message to ADDR.")
def profiles_check(name: str, send_to: str | None) -> None:
    """Fetch a token, connect, TLS, EHLO, AUTH (and send): ok or why not, step by step."""
    from worker.faces.profile_check import check_profile
    from worker.runtime import build_runtime

    rt = build_runtime()
    passed = True
    for step in check_profile(rt.credentials, name, send_to=send_to):
        passed = passed and step.ok
        click.echo(f"{step.name:<8} {'ok' if step.ok else 'FAILED'}  {step.detail}")
        if step.hint and not step.ok:
            click.echo(f"{'':<8} hint: {step.hint}")
    rt.close()
    sys.exit(0 if passed else 1)


@click.group(cls=MailpipeGroup)
def tokens() -> None:
    """Fetch OAuth tokens by hand."""


@tokens.command("refresh")
@click.argument("name", required=False)
def tokens_refresh(name: str | None) -> None:
    """Fetch a new token for NAME (or every OAuth profile) into the shared cache.

    Prints where each token came from and when it expires, never the token.
    """
    from providers import ProviderError
    from worker.credentials import OAuthCredentials
    from worker.runtime import build_runtime

    rt = build_runtime()
    credentials = rt.credentials
    names = [name] if name else [p.name for p in credentials.profiles if p.oauth]
    failed = 0
    for profile_name in names:
        try:
            result = credentials.get(credentials.profiles.get(profile_name), force=True)
        except ProviderError as exc:
            failed += 1
            click.echo(f"{profile_name}: failed: {exc}", err=True)
            if exc.details.trace_id or exc.details.correlation_id:
                click.echo(
                    f"  trace_id={exc.details.trace_id} "
                    f"correlation_id={exc.details.correlation_id} (quote these to the provider)",
                    err=True,
                )
            continue
        if not isinstance(result, OAuthCredentials):
            click.echo(f"{profile_name}: uses a password, no token to refresh")
            continue
        click.echo(f"{profile_name}: {_describe(result)}")
    rt.close()
    sys.exit(1 if failed else 0)


def _describe(result: OAuthCredentials) -> str:
    token = result.cached.token
    expires = datetime.fromtimestamp(token.expires_at, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    minutes = (token.expires_at - time.time()) / 60
    origin = {
        "fresh": "new token from the token endpoint",
        "redis": "token from the shared cache (another process had just refreshed it)",
        "memory": "token from this process's cache",
        "stale": "refresh failed; still-valid cached token",
    }[result.source]
    return f"{origin}, expires {expires} (in {minutes:.0f} min)"
