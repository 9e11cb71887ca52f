"""The door of the HTTP intake: the key and the content type, checked before the body is read.

The framework reads a request's body before it resolves the endpoint's
dependencies, so a key checked there comes after the body (up to
MAILPIPE_API_MAX_BODY_BYTES) is in memory: anyone could make ``serve`` read
15 MB per request without a key. Here, in front of the body limit, a request
without a valid key is refused from its headers alone; the caller found is
handed to the endpoints (``deps.caller``).

Every body the intake takes is JSON, and only a JSON content type is taken
(else 415). A web page can make a browser post ``text/plain`` or a form to a
loopback intake without asking first (CORS lets such "simple" requests
through); it cannot post ``application/json`` without a preflight the intake
never answers.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Receive, Scope, Send

from worker.faces.http.keys import ApiKeys
from worker.faces.http.problems import Problem, response

# Open to all: the probes, and the API's own description.
OPEN_PATHS = frozenset(
    {"/healthz", "/readyz", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"}
)
# The operator console signs in with a key once and then checks its own session cookie
# and CSRF token (console/sessions.py); its forms are form-encoded, not JSON.
CONSOLE = "/ui"
STATE_KEY = "caller"
_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})


class Gate:
    """ASGI middleware: 401 for a missing or wrong key, 415 for a body that is not JSON."""

    def __init__(self, app: ASGIApp, keys: ApiKeys) -> None:
        self.app = app
        self.keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        console = path == CONSOLE or path.startswith(CONSOLE + "/")
        if scope["type"] != "http" or path in OPEN_PATHS or console:
            await self.app(scope, receive, send)
            return
        try:
            self._check(scope)
        except Problem as problem:
            await response(problem)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _check(self, scope: Scope) -> None:
        authorization = _header(scope, b"authorization").decode("latin-1") or None
        query_key = _query_value(scope.get("query_string", b""), "api_key")
        scope.setdefault("state", {})[STATE_KEY] = self.keys.caller(authorization, query_key)
        if scope["method"] in _WITH_BODY and not is_json(_header(scope, b"content-type")):
            raise Problem(
                415,
                "Unsupported media type",
                "the body must be JSON, sent with 'Content-Type: application/json'",
            )


def is_json(content_type: bytes) -> bool:
    """``application/json`` or ``application/*+json``, parameters (charset) aside."""
    media = content_type.decode("latin-1").partition(";")[0].strip().lower()
    kind, _, subtype = media.partition("/")
    return kind == "application" and (subtype == "json" or subtype.endswith("+json"))


def _header(scope: Scope, name: bytes) -> bytes:
    # The first one, as the framework reads a repeated header.
    for key, value in scope.get("headers") or []:
        if key == name:
            return bytes(value)
    return b""


def _query_value(query_string: bytes, name: str) -> str | None:
    # The last one wins, as the framework reads a repeated query parameter.
    found = None
    for key, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
        if key == name:
            found = value
    return found
