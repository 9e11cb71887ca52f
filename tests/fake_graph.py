"""Microsoft Graph's ``sendMail`` on a real local HTTPS server, scripted per test.

Follows Microsoft Learn's documented shapes: ``POST /v1.0/users/{id|upn}/sendMail``
with ``Content-Type: text/plain`` and the MIME message base64-encoded answers
``202 Accepted`` with an empty body; errors are ``{"error": {"code", "message",
"innerError": {"date", "request-id", "client-request-id"}}}``; every answer has
``request-id`` and echoes ``client-request-id``; throttling is ``429`` with
``Retry-After``. A bearer token is accepted when the token endpoint issued it and
it was not revoked here; any other gets Graph's 401 ``InvalidAuthenticationToken``.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email import message_from_bytes
from email.message import Message

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from tests.fake_idp import FakeIdP
from tests.smtp_tls import TlsFiles

Step = Callable[[Request, str], Response]
PREFIX = "/v1.0"


@dataclass(frozen=True)
class GraphSend:
    mailbox: str
    mime: bytes
    query: dict[str, str]
    headers: dict[str, str]

    @property
    def message(self) -> Message:
        return message_from_bytes(self.mime)


def graph_error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> Step:
    """A Graph error answer, with the body and headers Graph sends."""

    def step(request: Request, request_id: str) -> Response:
        inner = {
            "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
            "request-id": request_id,
            "client-request-id": request.headers.get("client-request-id", request_id),
        }
        body = {"error": {"code": code, "message": message, "innerError": inner}}
        return Response(
            json.dumps(body), status=status, headers=headers, content_type="application/json"
        )

    return step


def throttled(retry_after: int = 1) -> Step:
    return graph_error(
        429, "ApplicationThrottled", "Application is over its MailboxConcurrency limit.",
        {"Retry-After": str(retry_after)},
    )  # fmt: skip


ACCESS_DENIED = graph_error(
    403, "ErrorAccessDenied", "Access is denied. Check credentials and try again."
)
NOT_ENABLED = graph_error(
    404,
    "MailboxNotEnabledForRESTAPI",
    "The mailbox is either inactive, soft-deleted, or is hosted on-premise.",
)
INVALID_TOKEN = graph_error(
    401, "InvalidAuthenticationToken", "Access token validation failure. Invalid audience."
)


class FakeGraph:
    """Graph's sendMail; ``sent`` holds each accepted message, ``then`` scripts answers."""

    def __init__(self, server: HTTPServer, idp: FakeIdP) -> None:
        self.server = server
        self.idp = idp
        self.sent: list[GraphSend] = []
        self.requests = 0
        self.revoked: set[str] = set()
        self._script: deque[Step] = deque()
        self._lock = threading.Lock()
        self.in_flight = 0
        self.most_in_flight = 0
        self.hold = threading.Event()
        self.hold.set()
        users = re.compile(rf"{re.escape(PREFIX)}/users/.+")
        server.expect_request(users, method="POST").respond_with_handler(self._handle)

    @property
    def url(self) -> str:
        return self.server.url_for(PREFIX)

    def then(self, *steps: Step) -> None:
        with self._lock:
            self._script.extend(steps)

    def _handle(self, request: Request) -> Response:
        request_id = str(uuid.uuid4())
        with self._lock:
            self.requests += 1
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            step = self._script.popleft() if self._script else None
        try:
            self.hold.wait(30)
            response = (step or self._send_mail)(request, request_id)
        finally:
            with self._lock:
                self.in_flight -= 1
        response.headers["request-id"] = request_id
        if "client-request-id" in request.headers:
            response.headers["client-request-id"] = request.headers["client-request-id"]
        return response

    def _send_mail(self, request: Request, request_id: str) -> Response:
        mailbox, _, action = request.path.removeprefix(f"{PREFIX}/users/").partition("/")
        if action != "sendMail":
            return graph_error(400, "BadRequest", "Resource not found for the segment.")(
                request, request_id
            )
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if token not in self.idp.issued_access_tokens or token in self.revoked:
            return INVALID_TOKEN(request, request_id)
        if request.content_type != "text/plain":
            return graph_error(
                415, "ErrorInvalidContentType", "Content type must be text/plain for MIME."
            )(request, request_id)
        try:
            mime = base64.b64decode(request.get_data(), validate=True)
        except binascii.Error:
            return graph_error(
                400,
                "ErrorMimeContentInvalidBase64String",
                "Invalid base64 string for MIME content.",
            )(request, request_id)
        with self._lock:
            self.sent.append(
                GraphSend(mailbox, mime, dict(request.args), dict(request.headers.items()))
            )
        return Response(status=202)


@pytest.fixture(scope="session")
def graph_server(tls: TlsFiles) -> Iterator[HTTPServer]:
    """One HTTPS server per test process: stopping one takes up to half a second."""
    server = HTTPServer(host="127.0.0.1", port=0, ssl_context=tls.server_context, threaded=True)
    server.start()
    yield server
    server.clear()
    server.stop()


@pytest.fixture
def graph(graph_server: HTTPServer, idp: FakeIdP) -> Iterator[FakeGraph]:
    """A FakeGraph on HTTPS with a certificate from the test CA (``tls.ca_pem``).

    Each test's FakeGraph starts on a cleared server (no handler, no log of an earlier
    test's requests), like ``idp`` on ``http_server``.
    """
    graph_server.clear()
    fake = FakeGraph(graph_server, idp)
    yield fake
    fake.hold.set()
    graph_server.clear()
