"""The ``mailpipe`` command (the contract in DESIGN.md)."""

from __future__ import annotations

import logging
import os
import sys
import time
from datetime import UTC, datetime

import click
from cryptography.fernet import Fernet

from providers import ProviderError
from worker.credentials import Credentials, OAuthCredentials
from worker.errors import MailpipeError
from worker.profile_check import check_profile
from worker.profiles import Profile, load_profiles
from worker.settings import get_settings


class _Group(click.Group):
    """Prints our errors as ``mailpipe: error: …`` lines instead of tracebacks."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except (MailpipeError, ProviderError) as exc:
            for line in str(exc).splitlines():
                click.echo(f"mailpipe: error: {line}", err=True)
            sys.exit(1)


@click.group(cls=_Group)
@click.option("-v", "--verbose", is_flag=True, help="Log what happens (token requests, retries).")
def main(verbose: bool) -> None:
    """mailpipe: the email worker behind incident and alerting notifications."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.ERROR,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


@main.command("secret-key")
def secret_key() -> None:
    """Print a new Fernet key for MAILPIPE_SECRET_KEY."""
    click.echo(Fernet.generate_key().decode())


@main.group()
def profiles() -> None:
    """Inspect the SMTP profiles file."""


@profiles.command("list")
def profiles_list() -> None:
    """One line per profile: provider, authentication, server, sender."""
    settings = get_settings()
    loaded = load_profiles(settings.profiles_file, os.environ)
    rows = [("NAME", "PROVIDER", "AUTH", "SERVER", "FROM")]
    rows += [_profile_row(p) for p in loaded]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def _profile_row(profile: Profile) -> tuple[str, str, str, str, str]:
    auth = f"oauth/{profile.oauth.grant}" if profile.oauth else "password"
    server = f"{profile.host}:{profile.port} {profile.security}"
    return (profile.name, profile.provider, auth, server, profile.from_email)


@profiles.command("check")
@click.argument("name")
@click.option("--send-to", metavar="ADDR", help="Also send a short test message to ADDR.")
def profiles_check(name: str, send_to: str | None) -> None:
    """Fetch a token, connect, TLS, EHLO, AUTH (and send): ok or why not, step by step."""
    credentials = Credentials.from_settings(get_settings())
    passed = True
    for step in check_profile(credentials, name, send_to=send_to):
        passed = passed and step.ok
        click.echo(f"{step.name:<8} {'ok' if step.ok else 'FAILED'}  {step.detail}")
        if step.hint and not step.ok:
            click.echo(f"{'':<8} hint: {step.hint}")
    credentials.cache.close()
    sys.exit(0 if passed else 1)


@main.group()
def tokens() -> None:
    """Fetch OAuth tokens by hand."""


@tokens.command("refresh")
@click.argument("name", required=False)
def tokens_refresh(name: str | None) -> None:
    """Fetch a new token for NAME (or every OAuth profile) into the shared cache.

    Prints where each token came from and when it expires, never the token.
    """
    credentials = Credentials.from_settings(get_settings())
    names = [name] if name else [p.name for p in credentials.profiles if p.oauth]
    failed = 0
    for profile_name in names:
        try:
            result = credentials.get(profile_name, force=True)
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
    credentials.cache.close()
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
