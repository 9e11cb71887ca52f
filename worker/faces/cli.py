"""The ``mailpipe`` command; its commands and options are a contract (docs/reference/cli.md)."""

from __future__ import annotations

import json
import logging
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from worker.errors import MailpipeError
from worker.faces import cli_credentials, cli_oauth, cli_services
from worker.faces.cli_group import MailpipeGroup

if TYPE_CHECKING:
    from worker.store import Store

# Each command imports what it needs when it runs: `mailpipe --help` and the
# light commands (status, attempts, profiles list) start without Celery, Redis,
# the HTTP client or the web framework (`python -X importtime` shows what loads).


@click.group(cls=MailpipeGroup)
@click.option("-v", "--verbose", is_flag=True, help="Log what happens (token requests, retries).")
def main(verbose: bool) -> None:
    """mailpipe: the email worker behind incident and alerting notifications."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.ERROR,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


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
    Exit 3 when the job is stored but the broker could not take it.
    """
    # Imported here: it builds the Celery app, which the other commands do not need.
    from worker.intake import notify
    from worker.queue import build_producer

    if text is not None and text_file is None:
        body = text
    elif text is None and text_file is not None:
        body = _read_text(text_file, "--text-file")
    else:
        raise click.UsageError("give exactly one of --text and --text-file")
    html = _read_text(html_file, "--html-file") if html_file else None
    fields = dict(_header(h) for h in headers)
    rt = build_producer()
    try:
        job_id = notify(
            profile,
            to=to,
            cc=cc,
            bcc=bcc,
            subject=subject,
            text=body,
            html=html,
            headers=fields,
            idempotency_key=idempotency_key,
            priority=priority,  # type: ignore[arg-type]
            runtime=rt,
        )
        click.echo(job_id)
        job = rt.store.get_job(job_id)
        if job is not None and job.status == "queued" and job.published_at is None:
            click.echo(
                f"mailpipe: job {job_id} is stored but the broker is unreachable; "
                "a worker's sweep sends it on once the broker is back",
                err=True,
            )
            sys.exit(3)
        deadline = time.monotonic() + (wait or 0)
        while wait is not None:
            job = rt.store.get_job(job_id)
            if job is not None and job.status in ("delivered", "failed"):
                click.echo(f"{job.status}: {job.outcome_text}")
                sys.exit(0 if job.status == "delivered" else 1)
            if time.monotonic() >= deadline:
                click.echo(f"pending: {job.status if job else 'unknown'} after {wait:g}s")
                sys.exit(2)
            time.sleep(0.1)
    finally:
        rt.close()


def _read_text(path: Path, option: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise MailpipeError(f"{option}: {str(path)!r} is not UTF-8 text") from None
    except OSError as exc:
        raise MailpipeError(f"{option}: cannot read {str(path)!r}: {exc.strerror}") from None


def _header(text: str) -> tuple[str, str]:
    # Blanks only: a control character at either end is for notify() to refuse.
    name, sep, value = text.partition(":")
    if not sep or not name.strip(" \t"):
        raise click.BadParameter(f"{text!r} is not 'Name: value'", param_hint="--header")
    return name.strip(" \t"), value.strip(" \t")


@main.command()
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(job_id: str, as_json: bool) -> None:
    """The job, its attempts, per-recipient results and events (with their callbacks)."""
    from worker.faces.reports import job_dict, job_lines

    store = _store()
    job = store.get_job(job_id)
    if job is None:
        raise MailpipeError(f"no job {job_id}")
    events = store.events_of(job.id)
    if as_json:
        click.echo(json.dumps(job_dict(job, events), indent=2))
    else:
        click.echo("\n".join(job_lines(job, events)))


@main.command()
@click.option("--profile")
@click.option("--failed", is_flag=True, help="Only attempts that did not deliver.")
@click.option("--since", metavar="DURATION", help="e.g. 30m, 1h, 7d")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def attempts(profile: str | None, failed: bool, since: str | None, as_json: bool) -> None:
    """Recent delivery attempts, newest first."""
    from worker.faces.reports import attempt_dict, attempt_row, parse_since

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
    from worker.settings import get_settings
    from worker.store.jobs import Store

    store = Store(get_settings().database_url.get_secret_value())
    store.check_schema()
    return store


@main.group(cls=MailpipeGroup)
def db() -> None:
    """The database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the tables to this version's schema."""
    from worker.settings import get_settings
    from worker.store.jobs import Store

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


# The other commands, in modules of their own.
main.add_command(cli_credentials.secret_key)
main.add_command(cli_credentials.profiles)
main.add_command(cli_credentials.tokens)
main.add_command(cli_oauth.oauth)
main.add_command(cli_services.serve)
main.add_command(cli_services.relay)
main.add_command(cli_services.api_key)
main.add_command(cli_services.sandbox)
