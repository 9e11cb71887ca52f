"""The ``mailpipe`` command; its commands and options are a contract (README, "Commands")."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import click
from cryptography.fernet import Fernet

from providers import ProviderError
from worker.credentials import OAuthCredentials, Profile, load_profiles
from worker.errors import MailpipeError
from worker.faces.profile_check import check_profile
from worker.faces.reports import attempt_dict, attempt_row, job_dict, job_lines, parse_since
from worker.runtime import build_producer, build_runtime
from worker.settings import get_settings
from worker.store import Store, rotate_stored


class _Group(click.Group):
    """Prints our errors as ``mailpipe: error: …`` lines instead of tracebacks."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except MailpipeError as exc:
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


@main.group("secret-key", invoke_without_command=True)
@click.pass_context
def secret_key(ctx: click.Context) -> None:
    """Print a new Fernet key for MAILPIPE_SECRET_KEY (or rotate to one)."""
    if ctx.invoked_subcommand is None:
        click.echo(Fernet.generate_key().decode())


@secret_key.command("rotate")
def secret_key_rotate() -> None:
    """Re-encrypt stored and cached tokens under the first key of MAILPIPE_SECRET_KEY.

    Put the new key first and the old one after it; after this, the old key
    can be removed.
    """
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


@main.command()
@click.option("--profile", required=True, help="The sending profile.")
@click.option("--to", "to", multiple=True, required=True, metavar="ADDR")
@click.option("--cc", multiple=True, metavar="ADDR")
@click.option("--bcc", multiple=True, metavar="ADDR")
@click.option("--subject", required=True)
@click.option("--text", help="The plain-text body.")
@click.option("--text-file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--html-file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--header", "headers", multiple=True, metavar="'Name: value'")
@click.option("--idempotency-key", metavar="KEY")
@click.option("--priority", type=click.Choice(["normal", "high"]), default="normal")
@click.option("--wait", type=float, metavar="SECONDS", help="Wait for the final state.")
def send(
    profile: str,
    to: tuple[str, ...],
    cc: tuple[str, ...],
    bcc: tuple[str, ...],
    subject: str,
    text: str | None,
    text_file: Path | None,
    html_file: Path | None,
    headers: tuple[str, ...],
    idempotency_key: str | None,
    priority: str,
    wait: float | None,
) -> None:
    """Queue a notification and print its job id.

    With --wait, exit 0 when delivered, 1 when failed, 2 when still pending.
    """
    # Imported here: it builds the Celery app, which the other commands do not need.
    from worker.intake import notify

    if (text is None) == (text_file is None):
        raise click.UsageError("give exactly one of --text and --text-file")
    body = text if text is not None else text_file.read_text(encoding="utf-8")  # type: ignore[union-attr]
    rt = build_producer()
    job_id = notify(
        profile,
        to=to,
        cc=cc,
        bcc=bcc,
        subject=subject,
        text=body,
        html=html_file.read_text(encoding="utf-8") if html_file else None,
        headers=dict(_header(h) for h in headers),
        idempotency_key=idempotency_key,
        priority=priority,  # type: ignore[arg-type]
        runtime=rt,
    )
    click.echo(job_id)
    if wait is None:
        return
    deadline = time.monotonic() + wait
    while True:
        job = rt.store.get_job(job_id)
        if job is not None and job.status in ("delivered", "failed"):
            click.echo(f"{job.status}: {job.outcome_text}")
            sys.exit(0 if job.status == "delivered" else 1)
        if time.monotonic() >= deadline:
            click.echo(f"pending: {job.status if job else 'unknown'} after {wait:g}s")
            sys.exit(2)
        time.sleep(0.1)


def _header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        raise click.BadParameter(f"'{text}' is not 'Name: value'", param_hint="--header")
    return name.strip(), value.strip()


@main.command()
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(job_id: str, as_json: bool) -> None:
    """The job, its attempts and per-recipient results."""
    job = _store().get_job(job_id)
    if job is None:
        raise MailpipeError(f"no job {job_id}")
    if as_json:
        click.echo(json.dumps(job_dict(job), indent=2))
    else:
        click.echo("\n".join(job_lines(job)))


@main.command()
@click.option("--profile")
@click.option("--failed", is_flag=True, help="Only attempts that did not deliver.")
@click.option("--since", metavar="DURATION", help="e.g. 30m, 1h, 7d")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def attempts(profile: str | None, failed: bool, since: str | None, as_json: bool) -> None:
    """Recent delivery attempts, newest first."""
    try:
        start = datetime.now(UTC) - parse_since(since) if since else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from None
    rows = _store().attempts(profile=profile, failed=failed, since=start)
    if as_json:
        click.echo(json.dumps([attempt_dict(a) for a in rows], indent=2))
    else:
        for attempt in rows:
            click.echo(attempt_row(attempt))


def _store() -> Store:
    store = Store(get_settings().database_url.get_secret_value())
    store.check_schema()
    return store


@main.group()
def db() -> None:
    """The database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the tables to this version's schema."""
    store = Store(get_settings().database_url.get_secret_value(), create=True)
    before, after = store.upgrade()
    store.check_schema()
    store.dispose()
    if before is None:
        click.echo(f"created the database schema (revision {after})")
    elif before != after:
        click.echo(f"upgraded the database schema from revision {before} to {after}")
    else:
        click.echo(f"database schema is up to date (revision {after})")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8025, show_default=True)
def serve(host: str, port: int) -> None:
    """The HTTP intake: notifications, Alertmanager/Grafana/JSON webhooks, health, metrics."""
    from worker.faces.http.server import serve as run

    run(host, port)


@main.group("api-key")
def api_key() -> None:
    """Keys for the HTTP intake."""


@api_key.command("new")
@click.argument("name")
@click.option("--profile", "profiles", multiple=True, help="Only this profile (repeatable).")
@click.option("--route", "routes", multiple=True, help="Only this route (repeatable).")
def api_key_new(name: str, profiles: tuple[str, ...], routes: tuple[str, ...]) -> None:
    """Print a new key, and the MAILPIPE_API_KEYS entry that holds only its digest."""
    from worker.faces.http.keys import digest, new_key
    from worker.settings import ApiKeySpec

    key = new_key()
    spec = ApiKeySpec(name=name, sha256=digest(key), profiles=profiles, routes=routes)
    click.echo(f"key (shown once; give it to the sender): {key}")
    click.echo("entry for the JSON list in MAILPIPE_API_KEYS:")
    click.echo(spec.model_dump_json())


@main.command()
@click.option("--dir", "directory", default=".sandbox", type=click.Path(path_type=Path))
@click.option("--outbox", default="outbox", type=click.Path(path_type=Path))
@click.option("--token-port", default=8089, show_default=True)
@click.option("--smtp-port", default=2587, show_default=True)
def sandbox(directory: Path, outbox: Path, token_port: int, smtp_port: int) -> None:
    """A local token endpoint and STARTTLS/XOAUTH2 SMTP server writing to ./outbox/."""
    from worker.faces.sandbox import run_sandbox  # needs the "sandbox" extra

    run_sandbox(directory, outbox, token_port, smtp_port)


# -- profiles and tokens ---------------------------------------------------------


@main.group()
def profiles() -> None:
    """Inspect the SMTP profiles file."""


@profiles.command("list")
def profiles_list() -> None:
    """One line per profile: provider, authentication, server, sender."""
    settings = get_settings()
    loaded = load_profiles(settings.profiles_file, os.environ)
    # The routes of the same file are checked too (the HTTP intake would refuse them).
    from worker.faces.http.routes import load_routes_file

    routes = load_routes_file(settings.profiles_file, list(loaded.by_name))
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
    return (profile.name, profile.provider, auth, server, profile.from_email)


@profiles.command("check")
@click.argument("name")
@click.option("--send-to", metavar="ADDR", help="Also send a short test message to ADDR.")
def profiles_check(name: str, send_to: str | None) -> None:
    """Fetch a token, connect, TLS, EHLO, AUTH (and send): ok or why not, step by step."""
    rt = build_runtime()
    passed = True
    for step in check_profile(rt.credentials, name, send_to=send_to):
        passed = passed and step.ok
        click.echo(f"{step.name:<8} {'ok' if step.ok else 'FAILED'}  {step.detail}")
        if step.hint and not step.ok:
            click.echo(f"{'':<8} hint: {step.hint}")
    rt.close()
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
    rt = build_runtime()
    credentials = rt.credentials
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
