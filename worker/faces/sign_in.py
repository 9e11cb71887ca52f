"""Signing a user in for a delegated profile's first refresh token (``mailpipe oauth``).

Three ways to bring the authorization back: a loopback redirect caught by a
one-shot HTTP server here (RFC 8252), the redirected URL pasted back (the
browser is on another machine), or the device grant (no browser at all). The
refresh token goes to the store, encrypted, where rotated ones go; it is never
printed.
"""

from __future__ import annotations

import threading
import webbrowser
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import urlsplit

from providers import RefreshTokenGrant, TokenEndpoint, TokenResponse
from providers.authorization import (
    AuthorizationClient,
    code_from_redirect,
    exchange_code,
    poll_device_authorization,
    start_authorization,
    start_device_authorization,
)
from worker.errors import ConfigError
from worker.store import DatabaseRefreshTokenStore

Echo = Callable[[str], None]

_DONE_PAGE = b"""<!doctype html><meta charset="utf-8"><title>mailpipe</title>
<p>mailpipe received the sign-in. You can close this tab and return to the terminal.</p>
"""


class LoopbackRedirect:
    """Catches the one redirect the browser makes to ``http://localhost:PORT/``."""

    def __init__(self, port: int = 0, path: str = "/") -> None:
        received: list[str] = []
        arrived = threading.Event()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if urlsplit(self.path).path != path or received:
                    self.send_error(404)
                    return
                received.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.end_headers()
                self.wfile.write(_DONE_PAGE)
                arrived.set()

            def log_message(self, format: str, *args: object) -> None:
                pass  # the query holds the authorization code: never logged

        try:
            self._server = HTTPServer(("127.0.0.1", port), Handler)
        except OSError as exc:
            raise ConfigError(
                f"cannot listen on 127.0.0.1:{port} for the sign-in redirect: {exc.strerror}"
            ) from None
        self._received = received
        self._arrived = arrived
        self.redirect_uri = f"http://localhost:{self._server.server_port}{path}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def wait(self, timeout_seconds: float) -> str:
        """The redirected URL (path and query), once the browser came back."""
        if not self._arrived.wait(timeout_seconds):
            raise ConfigError(
                f"no sign-in came back within {timeout_seconds:.0f} s: open the URL printed "
                "above in a browser on this machine, or use --paste or --device"
            )
        return self.redirect_uri.rstrip("/") + self._received[0]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def sign_in_with_browser(
    endpoint: TokenEndpoint,
    client: AuthorizationClient,
    echo: Echo,
    *,
    port: int = 0,
    open_browser: bool = False,
    timeout_seconds: float = 300.0,
) -> TokenResponse:
    redirect = LoopbackRedirect(port)
    try:
        request = start_authorization(client, redirect.redirect_uri)
        echo(f"Open this URL in a browser on this machine and sign in:\n\n  {request.url}\n")
        echo(f"Waiting for the redirect to {redirect.redirect_uri} …")
        if open_browser:
            webbrowser.open(request.url)
        redirected = redirect.wait(timeout_seconds)
    finally:
        redirect.close()
    return exchange_code(endpoint, client, request, code_from_redirect(client, request, redirected))


def sign_in_with_paste(
    endpoint: TokenEndpoint,
    client: AuthorizationClient,
    echo: Echo,
    read_line: Callable[[str], str],
    *,
    redirect_uri: str,
) -> TokenResponse:
    request = start_authorization(client, redirect_uri)
    echo(f"Open this URL in any browser and sign in:\n\n  {request.url}\n")
    echo(
        f"The browser then goes to {redirect_uri}… and shows an error page (nothing listens "
        "there): copy that whole address from the address bar."
    )
    redirected = read_line("Paste the address here")
    return exchange_code(endpoint, client, request, code_from_redirect(client, request, redirected))


def sign_in_with_device(
    endpoint: TokenEndpoint,
    client: AuthorizationClient,
    echo: Echo,
    *,
    sleep: Callable[[float], None] | None = None,
) -> TokenResponse:
    device = start_device_authorization(endpoint, client)
    echo(
        device.message
        or f"To sign in, open {device.verification_uri} and enter the code {device.user_code}"
    )
    echo(f"Waiting for the sign-in (the code expires in {device.expires_in / 60:.0f} min) …")
    if sleep is None:
        return poll_device_authorization(endpoint, client, device)
    return poll_device_authorization(endpoint, client, device, sleep=sleep)


def keep_refresh_token(
    store: DatabaseRefreshTokenStore, grant: RefreshTokenGrant, response: TokenResponse
) -> None:
    """Store the new refresh token where the grant looks first; it starts the chain afresh."""
    assert response.refresh_token is not None  # the flows refuse an answer without one
    store.save(grant.name, grant.seed_digest, response.refresh_token)
