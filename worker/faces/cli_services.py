"""``mailpipe serve``, ``relay``, ``api-key`` and ``sandbox``: the long-running faces."""

from __future__ import annotations

import errno
import os
import socket
import sys
from pathlib import Path

import click

from worker.errors import ConfigError, MailpipeError
from worker.faces.cli_group import MailpipeGroup


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8025, show_default=True)
def serve(host: str, port: int) -> None:
    """The HTTP intake: notifications, Alertmanager/Grafana/JSON webhooks, health, metrics."""
    check_port_free(host, port, "the HTTP intake")
    from worker.faces.http.server import serve as run

    run(host, port)


def check_port_free(host: str, port: int, what: str) -> None:
    """One line now, rather than a server that says it is serving and then cannot listen."""
    try:
        family, kind, _, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except (socket.gaierror, UnicodeError):
        return  # not an address: the server says so its own way
    with socket.socket(family, kind) as probe:
        # As the servers bind: connections of an earlier run in TIME_WAIT do not count.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ConfigError(
                    f"{host}:{port} is already in use, so {what} cannot listen there: another "
                    "process serves it (`make run` serves the HTTP intake on 8025 and the relay "
                    "on 2525); stop that one or choose another --port"
                ) from None
            raise ConfigError(f"{what} cannot listen on {host}:{port}: {exc.strerror}") from None


@click.group(cls=MailpipeGroup, invoke_without_command=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=2525, show_default=True)
@click.pass_context
def relay(ctx: click.Context, host: str, port: int) -> None:
    """The SMTP relay: tools with only a username and password send through mailpipe."""
    if ctx.invoked_subcommand is None:
        from worker.settings import get_settings

        check_port_free(host, port, "the SMTP relay")
        tls_port = get_settings().relay_tls_port
        if tls_port is not None:
            check_port_free(host, tls_port, "the SMTP relay (MAILPIPE_RELAY_TLS_PORT)")
        from worker.faces.relay.server import run_relay

        run_relay(host, port)


@relay.command("hash-password")
def relay_hash_password() -> None:
    """Read a password on stdin and print its hash for [relay.users.NAME] password_hash."""
    from worker.faces.relay.users import hash_password

    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise MailpipeError(
            'no password on stdin (e.g. `read -rs P; echo "$P" | mailpipe relay hash-password`)'
        )
    click.echo(hash_password(password))


@click.group("api-key", cls=MailpipeGroup)
def api_key() -> None:
    """Keys for the HTTP intake."""


@api_key.command("new")
@click.argument("name")
@click.option(
    "--profile", "profiles", multiple=True, metavar="NAME",
    help="May send as this profile (repeatable); '*': every profile.",
)  # fmt: skip
@click.option(
    "--route", "routes", multiple=True, metavar="NAME",
    help="May use this route, to its recipients only (repeatable); '*': every route.",
)  # fmt: skip
@click.option("--admin", is_flag=True, help="Sees every job, not only its own.")
def api_key_new(name: str, profiles: tuple[str, ...], routes: tuple[str, ...], admin: bool) -> None:
    """Print a new key, and the MAILPIPE_API_KEYS entry that holds only its digest.

    A key may use only what it is given: with no --profile and no --route it
    can send nothing (a key for /metrics, or with --admin for reading jobs).
    """
    from worker.faces.http.keys import digest, new_key
    from worker.settings import ApiKeySpec

    _check_names(profiles, routes)
    key = new_key()
    spec = ApiKeySpec(name=name, sha256=digest(key), profiles=profiles, routes=routes, admin=admin)
    click.echo(f"key (shown once; give it to the sender): {key}")
    click.echo("entry for the JSON list in MAILPIPE_API_KEYS:")
    click.echo(spec.model_dump_json())


def _check_names(profiles: tuple[str, ...], routes: tuple[str, ...]) -> None:
    """Refuse a profile or route the profiles file does not have (a typo would grant nothing)."""
    from worker.settings import ANY

    profiles, routes = tuple(set(profiles) - {ANY}), tuple(set(routes) - {ANY})
    if not profiles and not routes:
        return
    from worker.credentials import read_profiles_document
    from worker.faces.http.routes import routes_of
    from worker.settings import get_settings

    path = get_settings().profiles_file
    document = read_profiles_document(path, os.environ, secrets=False)
    for kind, names, there in (
        ("profile", profiles, document.profiles.by_name),
        ("route", routes, routes_of(document, get_settings().callback_policy())),
    ):
        for wanted in sorted(names):
            if wanted not in there:
                listed = ", ".join(sorted(there)) or "none"
                raise MailpipeError(f"{path}: no {kind} '{wanted}' ({kind}s: {listed})")


@click.command()
@click.option("--dir", "directory", default=".sandbox", type=click.Path(path_type=Path))
@click.option("--outbox", default="outbox", type=click.Path(path_type=Path))
@click.option("--token-port", default=8089, show_default=True)
@click.option("--smtp-port", default=2587, show_default=True)
def sandbox(directory: Path, outbox: Path, token_port: int, smtp_port: int) -> None:
    """A local token endpoint and STARTTLS/XOAUTH2 SMTP server writing to ./outbox/."""
    from worker.faces.sandbox import run_sandbox  # needs the "sandbox" extra

    run_sandbox(directory, outbox, token_port, smtp_port)


# -- profiles and tokens ---------------------------------------------------------
