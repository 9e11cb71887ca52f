"""A token endpoint on a real local HTTP server, scripted per test.

Answers like Microsoft Entra ID / Google by default (issues Bearer tokens,
rotates refresh tokens and retires the old one), records every request, and
can be told to answer the next requests with errors, delays or a hang.

It also answers token introspection (RFC 7662) at ``/introspect``, so that a real
SMTP server (Dovecot's ``oauth2`` passdb) can check the tokens it issued: a token is
active, for the user ``subjects`` names for its client, until the test ends.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import jwt
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from tests.leaks import SecretRegistry

Step = Callable[["FakeIdP", dict[str, str]], Response]
SIGN_IN_GRANTS = ("authorization_code", "urn:ietf:params:oauth:grant-type:device_code")


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(body), status=status, headers=headers, content_type="application/json"
    )


@dataclass
class Seen:
    form: dict[str, str]
    headers: dict[str, str] = field(default_factory=dict)


class FakeIdP:
    def __init__(
        self,
        server: HTTPServer,
        secrets: SecretRegistry,
        path: str = "/token",
        introspection_path: str = "/introspect",
    ) -> None:
        self.server = server
        self.secrets = secrets
        self.path = path
        self.requests: list[Seen] = []
        self.issued_refresh_tokens: list[str] = []
        self.issued_access_tokens: list[str] = []
        # The client each access token was issued to, and the user (mailbox) a client acts
        # as: what introspection answers for the token.
        self.token_clients: dict[str, str] = {}
        self.subjects: dict[str, str] = {}
        self.introspections: list[str] = []
        self.introspection_path = introspection_path
        self.valid_refresh_tokens: set[str] = set()
        self.expires_in = 3599
        # When set, access tokens are JWTs with these claims (as Entra ID's are).
        self.claims: dict[str, Any] | None = None
        self.release = threading.Event()
        self._script: deque[Step] = deque()
        # Per grant_type, what answers when nothing is scripted (default: issue()).
        self.handlers: dict[str, Step] = {}
        self._lock = threading.Lock()
        server.expect_request(path, method="POST").respond_with_handler(self._handle)
        server.expect_request(introspection_path, method="POST").respond_with_handler(
            self._introspect
        )

    @property
    def url(self) -> str:
        return self.server.url_for(self.path)

    @property
    def introspection_url(self) -> str:
        return self.server.url_for(self.introspection_path)

    def then(self, *steps: Step) -> None:
        """Answer the next requests with these steps, in order; then issue tokens."""
        with self._lock:
            self._script.extend(steps)

    def add_refresh_token(self, token: str) -> None:
        self.valid_refresh_tokens.add(token)
        self.secrets.add(token)

    def _handle(self, request: Request) -> Response:
        form = {k: v for k, v in request.form.items()}
        headers = {k: v for k, v in request.headers.items()}
        self.secrets.add(*(form.get(k) for k in ("client_secret", "client_assertion", "assertion")))
        self.secrets.add(form.get("refresh_token"))
        if headers.get("Authorization", "").startswith("Basic "):
            pair = base64.b64decode(headers["Authorization"][6:]).decode()
            self.secrets.add(unquote(pair.split(":", 1)[1]))
        with self._lock:
            self.requests.append(Seen(form, headers))
            default = self.handlers.get(form.get("grant_type", ""), issue())
            step = self._script.popleft() if self._script else default
        response = step(self, form)
        if token := _issued_token(response):
            with self._lock:
                self.token_clients[token] = _client_id(form, headers)
        return response

    def _introspect(self, request: Request) -> Response:
        """RFC 7662: ``token`` in a form; the answer says whether it is active, and for whom."""
        token = request.form.get("token", "")
        with self._lock:
            self.introspections.append(token)
            client = self.token_clients.get(token)
        if client is None:
            return json_response(200, {"active": False})
        body = {
            "active": True,
            "client_id": client,
            "username": self.subjects.get(client, client),
            "token_type": "Bearer",
            "exp": int(time.time()) + self.expires_in,
        }
        return json_response(200, body)


def _issued_token(response: Response) -> str | None:
    """The access token a 200 answer carries, if it is a JSON object with one."""
    if response.status_code != 200 or response.mimetype != "application/json":
        return None
    try:
        body = json.loads(response.get_data())
    except ValueError:
        return None
    token = body.get("access_token") if isinstance(body, dict) else None
    return token if isinstance(token, str) else None


def _client_id(form: dict[str, str], headers: dict[str, str]) -> str:
    """The client a token request came from: its form, or its HTTP Basic credentials."""
    authorization = headers.get("Authorization", "")
    if authorization.startswith("Basic "):
        return unquote(base64.b64decode(authorization[6:]).decode().split(":", 1)[0])
    return form.get("client_id", "")


def issue(expires_in: int | None = None, *, rotate: bool = True) -> Step:
    """Issue an access token; for refresh grants, check and rotate the refresh token."""

    def step(idp: FakeIdP, form: dict[str, str]) -> Response:
        body: dict[str, Any] = {
            "token_type": "Bearer",
            "expires_in": expires_in if expires_in is not None else idp.expires_in,
            "ext_expires_in": idp.expires_in,
            "access_token": _access_token(idp),
        }
        if form.get("grant_type") in SIGN_IN_GRANTS:
            # A user just signed in: the first refresh token of a new chain.
            new = f"0.ARw{uuid.uuid4().hex}-fake-refresh-token"
            idp.add_refresh_token(new)
            idp.issued_refresh_tokens.append(new)
            body["refresh_token"] = new
            body["scope"] = form.get("scope", "")
        if form.get("grant_type") == "refresh_token":
            presented = form.get("refresh_token", "")
            if presented not in idp.valid_refresh_tokens:
                return json_response(
                    400,
                    {
                        "error": "invalid_grant",
                        "error_description": "refresh token was already used or revoked",
                    },
                )
            if rotate:
                # Reuse detection (RFC 9700 §4.14.2): the old one stops working.
                idp.valid_refresh_tokens.discard(presented)
                new = f"0.ARw{uuid.uuid4().hex}-fake-refresh-token"
                idp.add_refresh_token(new)
                idp.issued_refresh_tokens.append(new)
                body["refresh_token"] = new
            body["scope"] = "https://outlook.office.com/SMTP.Send"
        idp.secrets.add(body["access_token"])
        idp.issued_access_tokens.append(body["access_token"])
        return json_response(200, body)

    return step


def _access_token(idp: FakeIdP) -> str:
    if idp.claims is None:
        return f"eyJ0eXAi.{uuid.uuid4().hex}.fake-access-token"
    claims = {**idp.claims, "exp": int(time.time()) + idp.expires_in, "uti": uuid.uuid4().hex}
    return jwt.encode(claims, "fake-idp-signing-key-of-at-least-32-bytes", algorithm="HS256")


def reply(status: int, body: Any, headers: dict[str, str] | None = None) -> Step:
    def step(idp: FakeIdP, form: dict[str, str]) -> Response:
        return json_response(status, body, headers)

    return step


def slowly(seconds: float, then: Step | None = None) -> Step:
    def step(idp: FakeIdP, form: dict[str, str]) -> Response:
        time.sleep(seconds)
        return (then or issue())(idp, form)

    return step


def hang() -> Step:
    """Never answer (until the test ends): a token endpoint that stalls."""

    def step(idp: FakeIdP, form: dict[str, str]) -> Response:
        idp.release.wait(60)
        return json_response(503, {"error": "temporarily_unavailable"})

    return step
