"""A receiver of mailpipe's callbacks for the tests: checks each signature, keeps each event.

It answers with the statuses it is given, in order, then 200: ``Receiver(answers=[500, 500])``
fails twice before it takes anything. A POST whose signature does not verify is kept apart
(``forged``) and answered 401.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import ssl
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TOLERANCE_SECONDS = 300


def verify(secret: bytes, header: str, body: bytes, now: float | None = None) -> bool:
    """The check docs/events.md shows: ``t=<unix>,v1=<hex HMAC-SHA256 of "t.body">``,
    fresh, constant-time."""
    fields = dict(part.split("=", 1) for part in header.split(","))
    expected = hmac.new(secret, fields["t"].encode() + b"." + body, hashlib.sha256).hexdigest()
    fresh = abs((now or time.time()) - int(fields["t"])) <= TOLERANCE_SECONDS
    return fresh and hmac.compare_digest(expected, fields["v1"])


@dataclass
class Post:
    status: int  # what the receiver answered
    event: dict[str, Any]
    host: str = ""  # the request's Host header
    path: str = ""


class Receiver:
    def __init__(
        self, secret: str, answers: Iterable[int] = (), tls: ssl.SSLContext | None = None
    ) -> None:
        self.secret = secret.encode()
        self.answers = list(answers)
        self.posts: list[Post] = []
        self.forged: list[bytes] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status = receiver._answer(
                    self.headers.get("X-Mailpipe-Signature", ""), body,
                    self.headers.get("Host", ""), self.path,
                )  # fmt: skip
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:  # HTTPS, with the certificate of the context given
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self.port = int(self._server.server_address[1])
        scheme = "https" if tls is not None else "http"
        self.url = f"{scheme}://127.0.0.1:{self.port}/hooks/mailpipe"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def _answer(self, signature: str, body: bytes, host: str = "", path: str = "") -> int:
        with self._lock:
            if not signature or not verify(self.secret, signature, body):
                self.forged.append(body)
                return 401
            status = self.answers.pop(0) if self.answers else 200
            self.posts.append(Post(status, json.loads(body), host, path))
            return status

    def taken(self) -> list[dict[str, Any]]:
        """The events it answered 2xx to."""
        with self._lock:
            return [p.event for p in self.posts if 200 <= p.status < 300]

    def statuses(self) -> list[int]:
        with self._lock:
            return [p.status for p in self.posts]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
