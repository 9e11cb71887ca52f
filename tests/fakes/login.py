"""Microsoft's identity platform for signing in, on a real local HTTPS server.

Follows the documented shapes of ``/{tenant}/oauth2/v2.0/authorize`` (a 302 back
to the redirect URI with ``code`` and ``state``, or with ``error`` and an
``error_description`` starting with the AADSTS code; a redirect URI that is not
registered gets Microsoft's own error page, never a redirect), ``/devicecode``
(``user_code``, ``device_code``, ``verification_uri``, ``interval``, ``message``)
and ``/token`` for the authorization code (PKCE S256 checked) and device code
grants, with Microsoft's error bodies (``error``, ``error_description``,
``error_codes``, ``trace_id``, ``correlation_id``). The app is registered as a
public "Mobile and desktop" client: ``http://localhost`` on any port.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal
from urllib.parse import urlencode, urlsplit

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from tests.fakes.idp import FakeIdP, issue
from tests.fakes.smtp_tls import TlsFiles
from tests.leaks import SecretRegistry

TENANT = "contoso.onmicrosoft.com"
CLIENT_ID = "22222222-2222-2222-2222-222222222222"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
User = Literal["approve", "decline", "consent_required"]
DeviceAnswer = Literal["pending", "slow_down", "approve", "decline", "expired"]


def microsoft_error(status: int, error: str, code: int, text: str) -> Response:
    trace, correlation = str(uuid.uuid4()), str(uuid.uuid4())
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    body = {
        "error": error,
        "error_description": f"AADSTS{code}: {text}\r\nTrace ID: {trace}\r\n"
        f"Correlation ID: {correlation}\r\nTimestamp: {now}",
        "error_codes": [code],
        "timestamp": now,
        "trace_id": trace,
        "correlation_id": correlation,
        "error_uri": f"https://login.microsoftonline.com/error?code={code}",
    }
    return Response(json.dumps(body), status=status, content_type="application/json")


@dataclass(frozen=True)
class IssuedCode:
    challenge: str
    redirect_uri: str
    scope: str


class FakeLogin:
    """Authorize, device code and token endpoints of one tenant; ``user`` decides sign-ins."""

    def __init__(self, server: HTTPServer, secrets: SecretRegistry) -> None:
        base = f"/{TENANT}/oauth2/v2.0"
        self.server = server
        self.base = base
        self.idp = FakeIdP(
            server, secrets, path=f"{base}/token", introspection_path=f"{base}/introspect"
        )
        # Delegated Exchange tokens, as Entra ID issues them for SMTP.Send.
        self.idp.claims = {"aud": "https://outlook.office.com", "scp": "SMTP.Send"}
        self.idp.handlers["authorization_code"] = self._redeem
        self.idp.handlers[DEVICE_GRANT] = self._poll
        self.user: User = "approve"
        self.device_answers: deque[DeviceAnswer] = deque()
        self.interval = 5
        self.authorize_requests: list[dict[str, str]] = []
        self.device_requests: list[dict[str, str]] = []
        self._codes: dict[str, IssuedCode] = {}
        self._device_codes: set[str] = set()
        self._lock = threading.Lock()
        server.expect_request(f"{base}/authorize", method="GET").respond_with_handler(
            self._authorize
        )
        server.expect_request(f"{base}/devicecode", method="POST").respond_with_handler(
            self._device_code
        )

    def url(self, endpoint: str) -> str:
        return self.server.url_for(f"{self.base}/{endpoint}")

    # -- /authorize ------------------------------------------------------------

    def _authorize(self, request: Request) -> Response:
        query = {k: v for k, v in request.args.items()}
        self.authorize_requests.append(query)
        redirect = query.get("redirect_uri", "")
        parts = urlsplit(redirect)
        if query.get("client_id") != CLIENT_ID:
            return _page(400, "AADSTS700016: Application with identifier was not found.")
        if parts.scheme != "http" or parts.hostname != "localhost":
            return _page(
                400,
                f"AADSTS50011: The redirect URI '{redirect}' specified in the request does not "
                "match the redirect URIs configured for the application.",
            )
        state = query.get("state", "")
        if query.get("code_challenge_method") != "S256" or not query.get("code_challenge"):
            return _back(redirect, state, error="invalid_request",
                         error_description="AADSTS9002325: Proof Key for Code Exchange is "
                         "required for cross-origin authorization code redemption.")  # fmt: skip
        if self.user == "decline":
            return _back(redirect, state, error="access_denied",
                         error_description="AADSTS65004: User declined to consent to access "
                         "the app.")  # fmt: skip
        if self.user == "consent_required":
            return _back(redirect, state, error="consent_required",
                         error_description="AADSTS65001: The user or administrator has not "
                         "consented to use the application.")  # fmt: skip
        code = f"0.AXwA{uuid.uuid4().hex}-fake-code"
        with self._lock:
            self._codes[code] = IssuedCode(
                query["code_challenge"], redirect, query.get("scope", "")
            )
        self.idp.secrets.add(code)
        return _back(redirect, state, code=code, session_state=str(uuid.uuid4()))

    def _redeem(self, idp: FakeIdP, form: dict[str, str]) -> Response:
        with self._lock:
            issued = self._codes.pop(form.get("code", ""), None)
        if issued is None:
            return microsoft_error(400, "invalid_grant", 54005,
                                   "OAuth2 Authorization code was already redeemed, please "
                                   "retry with a new valid code.")  # fmt: skip
        verifier = form.get("code_verifier", "")
        digest = hashlib.sha256(verifier.encode()).digest()
        if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != issued.challenge:
            return microsoft_error(400, "invalid_grant", 501481,
                                   "The Code_Verifier does not match the code_challenge "
                                   "supplied in the authorization request.")  # fmt: skip
        if form.get("redirect_uri") != issued.redirect_uri:
            return microsoft_error(400, "invalid_grant", 500117,
                                   "The reply uri specified in the request does not match "
                                   "the reply uri used in the authorization request.")  # fmt: skip
        return issue()(idp, form)

    # -- the device grant ---------------------------------------------------------

    def _device_code(self, request: Request) -> Response:
        form = {k: v for k, v in request.form.items()}
        self.device_requests.append(form)
        if form.get("client_id") != CLIENT_ID:
            return microsoft_error(400, "unauthorized_client", 700016,
                                   "Application with identifier was not found.")  # fmt: skip
        device_code = f"DAQABAAEAAA{uuid.uuid4().hex}"
        user_code = uuid.uuid4().hex[:9].upper()
        with self._lock:
            self._device_codes.add(device_code)
        self.idp.secrets.add(device_code)
        body = {
            "user_code": user_code,
            "device_code": device_code,
            "verification_uri": "https://microsoft.com/devicelogin",
            "expires_in": 900,
            "interval": self.interval,
            "message": "To sign in, use a web browser to open the page "
            f"https://microsoft.com/devicelogin and enter the code {user_code} to authenticate.",
        }
        return Response(json.dumps(body), status=200, content_type="application/json")

    def _poll(self, idp: FakeIdP, form: dict[str, str]) -> Response:
        if form.get("device_code") not in self._device_codes:
            return microsoft_error(400, "invalid_grant", 70000, "The device code is not valid.")
        answer = self.device_answers.popleft() if self.device_answers else "approve"
        if answer == "pending":
            return microsoft_error(400, "authorization_pending", 70016,
                                   "OAuth 2.0 device flow error. Authorization is pending. "
                                   "Continue polling.")  # fmt: skip
        if answer == "slow_down":
            return microsoft_error(400, "slow_down", 70016, "Polling too fast: slow down.")
        if answer == "decline":
            return microsoft_error(400, "authorization_declined", 70000,
                                   "The end user denied the authorization request.")  # fmt: skip
        if answer == "expired":
            return microsoft_error(400, "expired_token", 70020,
                                   "The provided value for the input parameter 'device_code' "
                                   "is not valid. This device code has expired.")  # fmt: skip
        return issue()(idp, form)


def _back(redirect: str, state: str, **values: str) -> Response:
    """The 302 that sends the browser back to the app."""
    return Response(
        status=302, headers={"Location": f"{redirect}?{urlencode({**values, 'state': state})}"}
    )


def _page(status: int, text: str) -> Response:
    return Response(f"<!doctype html><p>Sign in<p>{text}", status=status, content_type="text/html")


@pytest.fixture
def login(tls: TlsFiles, secrets: SecretRegistry) -> Iterator[FakeLogin]:
    """Microsoft's login endpoints for tenant contoso.onmicrosoft.com, on HTTPS (test CA)."""
    server = HTTPServer(host="127.0.0.1", port=0, ssl_context=tls.server_context, threaded=True)
    server.start()
    yield FakeLogin(server, secrets)
    server.clear()
    server.stop()
