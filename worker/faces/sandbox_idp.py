"""The sandbox's OAuth 2.0 provider: just enough for every grant mailpipe uses, on loopback.

- client credentials, for the app-only profile (a confidential client);
- authorization code with PKCE S256 (RFC 7636) to a loopback redirect (RFC 8252),
  and the device authorization grant (RFC 8628), for the delegated profile (a
  public client, as Microsoft's "Mobile and desktop" registrations are);
- refresh tokens that rotate: every refresh answers with a new one.

There is no login page: the sandbox has one user, who is signed in at once
(``/authorize`` redirects straight back; ``/device`` approves the code typed
in). Tokens are Fernet tokens under a key kept in the sandbox's directory, so
they outlive a restart of the sandbox; as Microsoft's do, a refresh token stays
valid after it rotated, until it expires. Nothing here is meant for production.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import html
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, unquote_plus, urlencode, urlsplit

from cryptography.fernet import Fernet, InvalidToken

log = logging.getLogger(__name__)

APP_CLIENT_ID = "mailpipe-sandbox"
APP_CLIENT_SECRET = "sandbox-client-secret"  # a sandbox credential, not a secret
SIGN_IN_CLIENT_ID = "mailpipe-sandbox-sign-in"  # public: no secret
USER = "oncall@sandbox.example"  # who signs in
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"

ACCESS_SECONDS = 3600
REFRESH_SECONDS = 90 * 86400  # Microsoft's: 90 days
CODE_SECONDS = 600
DEVICE_SECONDS = 900
DEVICE_INTERVAL_SECONDS = 2  # a sandbox need not make anyone wait RFC 8628's 5 s
_USER_CODE_LETTERS = "BCDFGHJKLMNPQRSTVWXZ"  # RFC 8628 §6.1: no vowels, no look-alikes

Reply = tuple[int, dict[str, Any]]


@dataclass(frozen=True)
class _Client:
    secret: str | None  # None: a public client, which must not send one
    grants: frozenset[str]


CLIENTS = {
    APP_CLIENT_ID: _Client(APP_CLIENT_SECRET, frozenset({"client_credentials"})),
    SIGN_IN_CLIENT_ID: _Client(
        None, frozenset({"authorization_code", DEVICE_GRANT, "refresh_token"})
    ),
}


@dataclass(frozen=True)
class _Code:
    challenge: str
    redirect_uri: str
    scope: str
    expires_at: float


@dataclass
class _Device:
    user_code: str
    scope: str
    expires_at: float
    approved: bool = False


def _error(status: int, error: str, description: str = "") -> Reply:
    body = {"error": error}
    if description:
        body["error_description"] = description
    return status, body


class SandboxIdP:
    """The endpoints' logic on plain data (forms and queries in, status and body out)."""

    def __init__(self, key: bytes, base_url: str, clock: Callable[[], float] = time.time) -> None:
        self._fernet = Fernet(key)
        self.base_url = base_url
        self._clock = clock
        self._lock = threading.Lock()
        self._codes: dict[str, _Code] = {}
        self._devices: dict[str, _Device] = {}

    # -- tokens --------------------------------------------------------------

    def _seal(self, kind: str, client_id: str, scope: str, user: str | None) -> str:
        claims = {"kind": kind, "client": client_id, "scope": scope, "user": user}
        at = int(self._clock())
        return self._fernet.encrypt_at_time(json.dumps(claims).encode(), at).decode()

    def _open(self, token: str, kind: str, ttl: int) -> dict[str, Any] | None:
        try:
            data = self._fernet.decrypt_at_time(token.encode(), ttl, int(self._clock()))
        except (InvalidToken, UnicodeError):
            return None
        claims: dict[str, Any] = json.loads(data)
        return claims if claims.get("kind") == kind else None

    def _tokens(self, client_id: str, scope: str, user: str | None) -> Reply:
        body: dict[str, Any] = {
            "access_token": self._seal("access", client_id, scope, user),
            "token_type": "Bearer",
            "expires_in": ACCESS_SECONDS,
            "scope": scope,
        }
        if user is not None:  # delegated: a refresh token, new on every answer (rotation)
            body["refresh_token"] = self._seal("refresh", client_id, scope, user)
        return 200, body

    def accepts(self, user: str, access_token: str) -> bool:
        """Whether SMTP AUTH as ``user`` with this token passes: a delegated token only for
        its own user, an app-only token for any mailbox (as an app granted SendAs is)."""
        claims = self._open(access_token, "access", ACCESS_SECONDS)
        return claims is not None and claims["user"] in (None, user)

    # -- /token --------------------------------------------------------------

    def token(self, form: Mapping[str, str], basic: tuple[str, str] | None = None) -> Reply:
        client_id, secret = basic or (form.get("client_id", ""), form.get("client_secret"))
        client = CLIENTS.get(client_id)
        if client is None or not _same(secret, client.secret):
            return _error(401, "invalid_client", "unknown client, or a wrong client secret")
        grant = form.get("grant_type", "")
        if grant not in client.grants:
            return _error(400, "unauthorized_client", f"{client_id} may not use {grant!r}")
        if grant == "client_credentials":
            return self._tokens(client_id, form.get("scope", ""), None)
        if grant == "authorization_code":
            return self._redeem(client_id, form)
        if grant == DEVICE_GRANT:
            return self._poll(client_id, form.get("device_code", ""))
        claims = self._open(form.get("refresh_token", ""), "refresh", REFRESH_SECONDS)
        if claims is None or claims["client"] != client_id:
            return _error(400, "invalid_grant", "the refresh token is not valid (expired?)")
        return self._tokens(client_id, claims["scope"], claims["user"])

    def _redeem(self, client_id: str, form: Mapping[str, str]) -> Reply:
        with self._lock:
            code = self._codes.pop(form.get("code", ""), None)  # used once
        if code is None or code.expires_at < self._clock():
            return _error(400, "invalid_grant", "the code is not valid, used or expired")
        if form.get("redirect_uri") != code.redirect_uri:
            return _error(400, "invalid_grant", "redirect_uri differs from the authorize one")
        if _s256(form.get("code_verifier", "")) != code.challenge:
            return _error(400, "invalid_grant", "code_verifier does not match code_challenge")
        return self._tokens(client_id, code.scope, USER)

    def _poll(self, client_id: str, device_code: str) -> Reply:
        with self._lock:
            device = self._devices.get(device_code)
            if device is not None and device.approved:
                del self._devices[device_code]
        if device is None:
            return _error(400, "invalid_grant", "unknown device code")
        if device.expires_at < self._clock():
            return _error(400, "expired_token", "the device code expired")
        if not device.approved:
            return _error(400, "authorization_pending", f"enter {device.user_code} first")
        return self._tokens(client_id, device.scope, USER)

    # -- /authorize ----------------------------------------------------------

    def authorize(self, query: Mapping[str, str]) -> tuple[int, str]:
        """(302, the redirect with the code) or (400, why: never a redirect elsewhere)."""
        redirect_uri = query.get("redirect_uri", "")
        where = urlsplit(redirect_uri)
        if query.get("client_id") != SIGN_IN_CLIENT_ID:
            return 400, f"unknown client_id: this sandbox signs in {SIGN_IN_CLIENT_ID} only"
        if where.scheme != "http" or where.hostname not in ("localhost", "127.0.0.1", "::1"):
            return 400, f"redirect_uri {redirect_uri!r} is not a loopback http:// address"
        back = {"state": query.get("state", "")}
        challenge = query.get("code_challenge", "")
        if query.get("response_type") != "code":
            back |= {"error": "unsupported_response_type"}
        elif query.get("code_challenge_method") != "S256" or not challenge:
            back |= {"error": "invalid_request", "error_description": "PKCE S256 is required"}
        else:
            code = secrets.token_urlsafe(32)
            expires_at = self._clock() + CODE_SECONDS
            with self._lock:
                self._codes[code] = _Code(
                    challenge, redirect_uri, query.get("scope", ""), expires_at
                )
            back["code"] = code
        separator = "&" if where.query else "?"
        return 302, f"{redirect_uri}{separator}{urlencode(back)}"

    # -- the device grant ----------------------------------------------------

    def device_code(self, form: Mapping[str, str]) -> Reply:
        client = CLIENTS.get(form.get("client_id", ""))
        if client is None or DEVICE_GRANT not in client.grants:
            return _error(400, "unauthorized_client", "this client may not use the device grant")
        device_code = secrets.token_urlsafe(32)
        letters = "".join(secrets.choice(_USER_CODE_LETTERS) for _ in range(8))
        user_code = f"{letters[:4]}-{letters[4:]}"
        with self._lock:
            self._devices[device_code] = _Device(
                user_code, form.get("scope", ""), self._clock() + DEVICE_SECONDS
            )
        url = f"{self.base_url}/device"
        return 200, {
            "device_code": device_code,
            "user_code": user_code,
            "verification_uri": url,
            "verification_uri_complete": f"{url}?{urlencode({'user_code': user_code})}",
            "expires_in": DEVICE_SECONDS,
            "interval": DEVICE_INTERVAL_SECONDS,
            "message": f"To sign in, open {url} and enter the code {user_code}",
        }

    def approve(self, user_code: str) -> bool:
        """The user entered ``user_code`` on the device page: True if it was one waiting."""
        wanted = _normal(user_code)
        with self._lock:
            for device in self._devices.values():
                if _normal(device.user_code) == wanted and device.expires_at >= self._clock():
                    device.approved = True
                    return True
        return False


def _same(given: str | None, expected: str | None) -> bool:
    if expected is None:
        return not given  # a public client has no secret to send
    return given is not None and hmac.compare_digest(given, expected)


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _normal(user_code: str) -> str:
    return "".join(c for c in user_code.upper() if c.isalnum())


# -- over HTTP -------------------------------------------------------------------

_DEVICE_PAGE = """<!doctype html><meta charset="utf-8"><title>mailpipe sandbox: sign in</title>
<h1>mailpipe sandbox</h1><p>{said}</p>
<form method="post" action="/device"><label>Code shown by mailpipe:
<input name="user_code" value="{code}" autofocus></label> <button>Sign in as {user}</button></form>
"""


class _Handler(BaseHTTPRequestHandler):
    """``/token``, ``/devicecode`` and ``/device`` (POST), ``/authorize`` and ``/device`` (GET)."""

    idp: SandboxIdP

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = _first_values(url.query)
        if url.path == "/authorize":
            status, answer = self.idp.authorize(query)
            if status == 302:
                self._send(302, b"", "text/plain", location=answer)
            else:
                self._page(status, html.escape(answer))
        elif url.path == "/device":
            self._device_page("Enter the code mailpipe printed.", query.get("user_code", ""))
        else:
            self._page(404, "not found")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        form = _first_values(self.rfile.read(length).decode())
        path = urlsplit(self.path).path
        if path == "/token":
            self._json(*self.idp.token(form, _basic(self.headers.get("Authorization", ""))))
        elif path == "/devicecode":
            self._json(*self.idp.device_code(form))
        elif path == "/device" and self.idp.approve(form.get("user_code", "")):
            self._page(200, f"Signed in as {USER}: go back to the terminal.")
        elif path == "/device":
            self._device_page("That code is unknown or expired: try again.", "")
        else:
            self._page(404, "not found")

    def _device_page(self, said: str, code: str) -> None:
        page = _DEVICE_PAGE.format(said=said, code=html.escape(code), user=USER)
        self._send(200, page.encode(), "text/html; charset=utf-8")

    def _page(self, status: int, text: str) -> None:
        page = f"<!doctype html><title>mailpipe sandbox</title><p>{text}</p>\n"
        self._send(status, page.encode(), "text/html; charset=utf-8")

    def _json(self, status: int, body: dict[str, Any]) -> None:
        self._send(status, json.dumps(body).encode(), "application/json")

    def _send(self, status: int, data: bytes, kind: str, location: str = "") -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        if location:
            self.send_header("Location", location)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        # The path only: queries and redirects carry codes.
        log.info("token endpoint: %s %s", self.command, urlsplit(self.path).path)


def idp_handler(idp: SandboxIdP) -> type[BaseHTTPRequestHandler]:
    """The request handler class for an ``http.server`` serving ``idp``."""
    return type("SandboxIdPHandler", (_Handler,), {"idp": idp})


def _first_values(encoded: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(encoded).items()}


def _basic(header: str) -> tuple[str, str] | None:
    """client_secret_basic (RFC 6749 §2.3.1): both parts form-urlencoded, then base64."""
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, _, password = base64.b64decode(value, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeError):
        return None
    return unquote_plus(user), unquote_plus(password)
