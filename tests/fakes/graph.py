"""Microsoft Graph's ``sendMail`` on a real local HTTPS server, scripted per test.

Follows Microsoft Learn's documented shapes: ``POST /v1.0/users/{id|upn}/sendMail``
with ``Content-Type: text/plain`` and the MIME message base64-encoded answers
``202 Accepted`` with an empty body; errors are ``{"error": {"code", "message",
"innerError": {"date", "request-id", "client-request-id"}}}``; every answer has
``request-id`` and echoes ``client-request-id``; throttling is ``429`` with
``Retry-After``. A bearer token is accepted when the token endpoint issued it and
it was not revoked here; any other gets Graph's 401 ``InvalidAuthenticationToken``.

It also serves mailboxes, for the bounce reader, as Microsoft Learn documents them
("message: delta", "Get MIME content of a message", "message: move"):
``GET …/users/{id}/mailFolders/{folder}/messages/delta`` answers pages of
``{"value": [...]}`` joined by ``@odata.nextLink`` (``$skiptoken``), the last one with
an ``@odata.deltaLink`` (``$deltatoken``) that later answers only what changed since:
new messages, and ``{"id", "@removed": {"reason": "deleted"}}`` for those gone; a page
holds at most ``Prefer: odata.maxpagesize`` entries. ``GET …/messages/{id}/$value``
answers the MIME with ``Content-Type: text/plain``; ``POST …/messages/{id}/move`` with
``{"destinationId": folder id or well-known name}`` answers ``201`` and the moved
message, whose id is new unless ``Prefer: IdType="ImmutableId"`` asked to keep it.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import re
import secrets
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes
from email.message import Message

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from tests.fakes.idp import FakeIdP
from tests.fakes.smtp_tls import TlsFiles

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


NOT_FOUND = graph_error(
    404, "ErrorItemNotFound", "The specified object was not found in the store."
)
WELL_KNOWN_FOLDERS = ("inbox", "archive", "deleteditems", "junkemail", "drafts", "sentitems")
_MAX_PAGE_SIZE = re.compile(r"odata\.maxpagesize=(\d+)")


@dataclass
class _Folder:
    id: str
    name: str
    messages: dict[str, bytes] = field(default_factory=dict)  # id → MIME, in arrival order
    # Every change, in order: (sequence number, message id, "added" | "removed").
    changes: list[tuple[int, str, str]] = field(default_factory=list)


@dataclass
class _Round:
    """A delta round under way: the entries still to page out, and where it ends."""

    folder: _Folder
    entries: list[dict[str, object]]
    ends_at: int


class FakeGraph:
    """Graph's sendMail and mailboxes; ``sent`` holds each accepted message, ``then`` scripts
    answers, ``deliver`` puts a message in a mailbox's folder."""

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
        # Mailboxes: address (lower-case) → folder id → folder; delta rounds by token.
        self.folders: dict[str, dict[str, _Folder]] = {}
        # The most a delta page holds: Graph may send fewer than odata.maxpagesize asks.
        self.page_size = 10
        self._rounds: dict[str, _Round] = {}
        self._deltas: dict[str, tuple[_Folder, int]] = {}
        self._sequence = itertools.count(1)
        users = re.compile(rf"{re.escape(PREFIX)}/users/.+")
        server.expect_request(users).respond_with_handler(self._handle)

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
            response = (step or self.answer)(request, request_id)
        finally:
            with self._lock:
                self.in_flight -= 1
        response.headers["request-id"] = request_id
        if "client-request-id" in request.headers:
            response.headers["client-request-id"] = request.headers["client-request-id"]
        return response

    # -- mailboxes -------------------------------------------------------------

    def deliver(self, mailbox: str, mime: bytes, folder: str = "inbox") -> str:
        """Put a message in a folder (a well-known name or an id); its new id."""
        with self._lock:
            target = self._folder(mailbox, folder)
            assert target is not None, f"no folder {folder} in {mailbox}"
            message_id = _new_id()
            self._add(target, message_id, mime)
            return message_id

    def create_folder(self, mailbox: str, name: str) -> str:
        """A folder of the mailbox's own; its id (what ``destinationId`` takes)."""
        with self._lock:
            folder_id = _new_id()
            self._mailbox(mailbox)[folder_id] = _Folder(folder_id, name)
            return folder_id

    def messages_in(self, mailbox: str, folder: str) -> list[bytes]:
        with self._lock:
            found = self._folder(mailbox, folder)
            return list(found.messages.values()) if found else []

    def _mailbox(self, mailbox: str) -> dict[str, _Folder]:
        folders = self.folders.get(mailbox.lower())
        if folders is None:
            folders = self.folders[mailbox.lower()] = {
                name: _Folder(name, name) for name in WELL_KNOWN_FOLDERS
            }
        return folders

    def _folder(self, mailbox: str, folder: str) -> _Folder | None:
        folders = self._mailbox(mailbox)
        # Well-known names are case-insensitive; ids are not.
        return folders.get(folder) or (
            folders.get(folder.lower()) if folder.lower() in WELL_KNOWN_FOLDERS else None
        )

    def _add(self, folder: _Folder, message_id: str, mime: bytes) -> None:
        folder.messages[message_id] = mime
        folder.changes.append((next(self._sequence), message_id, "added"))

    def _remove(self, folder: _Folder, message_id: str) -> bytes:
        folder.changes.append((next(self._sequence), message_id, "removed"))
        return folder.messages.pop(message_id)

    def _holding(self, mailbox: str, message_id: str) -> _Folder | None:
        return next((f for f in self._mailbox(mailbox).values() if message_id in f.messages), None)

    # -- routes ----------------------------------------------------------------

    def answer(self, request: Request, request_id: str) -> Response:
        """Graph's own answer to ``request`` (a scripted step may hand a request on to it)."""
        mailbox, _, action = request.path.removeprefix(f"{PREFIX}/users/").partition("/")
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if token not in self.idp.issued_access_tokens or token in self.revoked:
            return INVALID_TOKEN(request, request_id)
        parts = action.split("/")
        if request.method == "POST" and action == "sendMail":
            return self._send_mail(request, request_id)
        delta = ("mailFolders", "messages", "delta")
        is_delta = len(parts) == 4 and (parts[0], *parts[2:]) == delta
        if request.method == "GET" and is_delta:
            return self._delta(request, request_id, mailbox, parts[1])
        if request.method == "GET" and len(parts) == 3 and parts[::2] == ["messages", "$value"]:
            return self._value(request, request_id, mailbox, parts[1])
        if request.method == "POST" and len(parts) == 3 and parts[::2] == ["messages", "move"]:
            return self._move(request, request_id, mailbox, parts[1])
        return graph_error(400, "BadRequest", "Resource not found for the segment.")(
            request, request_id
        )

    def _delta(self, request: Request, request_id: str, mailbox: str, folder: str) -> Response:
        with self._lock:
            skip, delta = request.args.get("$skiptoken"), request.args.get("$deltatoken")
            if skip is not None:  # a link may be called again: its state is in the token
                round_ = self._rounds.get(skip)
            elif delta is not None:
                known = self._deltas.get(delta)
                round_ = self._changes(*known) if known else None
            else:
                found = self._folder(mailbox, folder)
                round_ = self._changes(found, 0) if found else None
            if round_ is None:
                return graph_error(
                    400, "SyncStateNotFound" if delta else "ErrorInvalidUrlQuery",
                    "The sync state is not valid or has expired.",
                )(request, request_id)  # fmt: skip
            wanted = _MAX_PAGE_SIZE.search(request.headers.get("Prefer", ""))
            size = min(int(wanted.group(1)), self.page_size) if wanted else self.page_size
            page, rest = round_.entries[:size], round_.entries[size:]
            base = f"{self.url}{request.path.removeprefix(PREFIX)}"
            body: dict[str, object] = {
                "@odata.context": f"{self.url}/$metadata#Collection(message)",
                "value": page,
            }
            link = secrets.token_urlsafe(24)
            if rest:
                self._rounds[link] = _Round(round_.folder, rest, round_.ends_at)
                body["@odata.nextLink"] = f"{base}?$skiptoken={link}"
            else:
                self._deltas[link] = (round_.folder, round_.ends_at)
                body["@odata.deltaLink"] = f"{base}?$deltatoken={link}"
        return Response(json.dumps(body), status=200, content_type="application/json")

    def _changes(self, folder: _Folder, after: int) -> _Round:
        """What changed in ``folder`` after change ``after``: each message's last word."""
        last: dict[str, str] = {}
        for number, message_id, kind in folder.changes:
            if number > after:
                last.pop(message_id, None)  # keeps the order of each message's last change
                last[message_id] = kind
        entries: list[dict[str, object]] = []
        for message_id, kind in last.items():
            if kind == "removed" and after == 0:
                continue  # a first round lists what is there, nothing gone
            if kind == "added" and message_id in folder.messages:
                entries.append(
                    {
                        "@odata.type": "#microsoft.graph.message",
                        "@odata.etag": f'W/"{message_id[-8:]}"',
                        "id": message_id,
                    }
                )
            elif kind == "removed" and message_id not in folder.messages:
                entries.append({"id": message_id, "@removed": {"reason": "deleted"}})
        ends_at = folder.changes[-1][0] if folder.changes else after
        return _Round(folder, entries, ends_at)

    def _value(self, request: Request, request_id: str, mailbox: str, message_id: str) -> Response:
        with self._lock:
            folder = self._holding(mailbox, message_id)
            mime = folder.messages[message_id] if folder else None
        if mime is None:
            return NOT_FOUND(request, request_id)
        return Response(mime, status=200, content_type="text/plain")

    def _move(self, request: Request, request_id: str, mailbox: str, message_id: str) -> Response:
        body = request.get_json(silent=True)
        destination = body.get("destinationId") if isinstance(body, dict) else None
        with self._lock:
            source = self._holding(mailbox, message_id)
            target = self._folder(mailbox, str(destination)) if destination else None
            if source is None:
                return NOT_FOUND(request, request_id)
            if target is None:
                return graph_error(400, "ErrorInvalidIdMalformed", "Id is malformed.")(
                    request, request_id
                )
            immutable = 'IdType="ImmutableId"' in request.headers.get("Prefer", "")
            moved_id = message_id if immutable else _new_id()
            self._add(target, moved_id, self._remove(source, message_id))
        moved = {
            "@odata.context": f"{self.url}/$metadata#users('{mailbox}')/messages/$entity",
            "@odata.type": "#microsoft.graph.message",
            "id": moved_id,
            "parentFolderId": target.id,
        }
        return Response(json.dumps(moved), status=201, content_type="application/json")

    def _send_mail(self, request: Request, request_id: str) -> Response:
        mailbox = request.path.removeprefix(f"{PREFIX}/users/").partition("/")[0]
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


def _new_id() -> str:
    """An id of Graph's look: URL-safe base64 of an opaque entry id."""
    return "AAMkA" + base64.urlsafe_b64encode(uuid.uuid4().bytes * 4).decode().rstrip("=")


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
