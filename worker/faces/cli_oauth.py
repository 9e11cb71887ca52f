"""``mailpipe oauth``: sign a user in for a delegated profile's refresh token; show its state."""

from __future__ import annotations

import sys
from datetime import timedelta
from typing import TYPE_CHECKING

import click

from worker.faces.cli_group import MailpipeGroup

if TYPE_CHECKING:
    from worker.runtime import Runtime

# The port a pasted redirect names when neither --port nor the profile's redirect_uri does.
PASTE_PORT = 8400


@click.group(cls=MailpipeGroup)
def oauth() -> None:
    """Sign in for a delegated profile's refresh token (no Postman), and show where it stands."""


@oauth.command("authorize")
@click.argument("name")
@click.option("--device", is_flag=True, help="Device code flow: for servers with no browser.")
@click.option("--paste", is_flag=True, help="Paste the redirected URL back (browser elsewhere).")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=0,
    show_default="any free port",
    help="Loopback port of the redirect (must match the app registration's).",
)
@click.option(
    "--open", "open_browser", is_flag=True, help="Open the URL in this machine's browser."
)
@click.option("--timeout", type=click.FloatRange(1), default=300.0, show_default=True,
              help="Seconds to wait for the sign-in.")  # fmt: skip
def oauth_authorize(
    name: str, device: bool, paste: bool, port: int, open_browser: bool, timeout: float
) -> None:
    """Sign in as the mailbox's user; the refresh token is stored encrypted, never shown.

    Authorization code with PKCE and state on a loopback redirect by default;
    then the `profiles check` steps run with the new token.
    """
    if device and paste:
        raise click.UsageError("give --device or --paste, not both")
    from providers import RefreshTokenGrant
    from worker.credentials.grants import authorization_client
    from worker.faces.sign_in import (
        keep_refresh_token,
        sign_in_with_browser,
        sign_in_with_device,
        sign_in_with_paste,
    )
    from worker.runtime import build_runtime

    rt = build_runtime()
    try:
        profile = rt.profiles.get(name)
        client = authorization_client(profile)
        endpoint = rt.credentials.cache.endpoint
        if device:
            response = sign_in_with_device(endpoint, client, click.echo)
        elif paste:
            redirect_uri = profile.oauth.redirect_uri if profile.oauth else None
            response = sign_in_with_paste(
                endpoint, client, click.echo, _prompt,
                redirect_uri=redirect_uri or f"http://localhost:{port or PASTE_PORT}/",
            )  # fmt: skip
        else:
            response = sign_in_with_browser(
                endpoint, client, click.echo, port=port, open_browser=open_browser,
                timeout_seconds=timeout,
            )  # fmt: skip
        grant = rt.credentials.grant(profile)
        assert isinstance(grant, RefreshTokenGrant)  # authorization_client checked the grant
        keep_refresh_token(rt.refresh_tokens, grant, response)
        click.echo(f"signed in: the refresh token of profile {name} is stored (encrypted)")
        passed = _check(rt, name)
    finally:
        rt.close()
    sys.exit(0 if passed else 1)


@oauth.command("status")
@click.argument("name")
def oauth_status(name: str) -> None:
    """Where the profile's refresh token came from, when it rotated, when it is kept alive."""
    from providers import RefreshTokenGrant
    from worker.credentials.grants import authorization_client
    from worker.runtime import build_runtime

    rt = build_runtime()
    try:
        profile = rt.profiles.get(name)
        authorization_client(profile)  # a delegated profile, or one clear line
        grant = rt.credentials.grant(profile)
        assert isinstance(grant, RefreshTokenGrant)
        written = rt.refresh_tokens.written(name)
        idle_days = rt.settings.refresh_token_idle_days
    finally:
        rt.close()
    current = written is not None and written[0] == grant.seed_digest
    if current and written is not None:
        origin = (
            "signed in with mailpipe oauth authorize"
            if grant.seed_refresh_token is None
            else "rotated from the profiles file's seed, or signed in since"
        )
        click.echo(f"{name}: refresh token stored (encrypted): {origin}")
        click.echo(f"  last rotated  {written[1]:%Y-%m-%d %H:%M:%SZ}")
        keep_alive = written[1] + timedelta(days=idle_days)
        click.echo(f"  kept alive    by beat's first run after {keep_alive:%Y-%m-%d %H:%M:%SZ}")
    elif grant.seed_refresh_token is not None:
        click.echo(f"{name}: the profiles file's seed refresh token, never rotated yet")
        click.echo("  kept alive    by beat's next run (a seed that never rotated is refreshed)")
    else:
        click.echo(f"{name}: no refresh token yet: run mailpipe oauth authorize {name}")
        sys.exit(1)


def _check(rt: Runtime, name: str) -> bool:
    from worker.faces.profile_check import check_profile

    passed = True
    for step in check_profile(rt.credentials, name):
        passed = passed and step.ok
        click.echo(f"{step.name:<8} {'ok' if step.ok else 'FAILED'}  {step.detail}")
        if step.hint and not step.ok:
            click.echo(f"{'':<8} hint: {step.hint}")
    return passed


def _prompt(text: str) -> str:
    return str(click.prompt(text, prompt_suffix=": "))
