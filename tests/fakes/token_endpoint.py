"""A token endpoint in a thread: reads a form POST, answers JSON; what it answers is the caller's.

The plumbing that the benchmark's and the chaos run's token endpoints share: a
``ThreadingHTTPServer`` on a free loopback port, serving in a daemon thread, that
hands every POST's form (first value of each field) to ``answer`` and sends back the
status, JSON body and headers it returns. Counting, lifetimes and faults stay with
the caller. (``idp.FakeIdP``, the tests' scripted endpoint, runs on pytest-httpserver.)
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

Answer = Callable[[dict[str, str]], tuple[int, dict[str, Any], dict[str, str]]]


class FormTokenEndpoint:
    """POST a form to ``url``; ``answer(form)`` says (status, JSON body, headers).

    ``delay_seconds`` is waited after ``answer`` and before the reply goes out
    (a slow identity provider); it may be changed while the endpoint runs.
    """

    def __init__(self, answer: Answer, *, delay_seconds: float = 0.0, path: str = "/token") -> None:
        self.answer = answer
        self.delay_seconds = delay_seconds
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._http.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._http.server_address[1]}{path}"
        threading.Thread(target=self._http.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._http.shutdown()
        self._http.server_close()


def _handler(endpoint: FormTokenEndpoint) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            status, body, headers = endpoint.answer(form)
            if endpoint.delay_seconds:
                time.sleep(endpoint.delay_seconds)
            data = json.dumps(body).encode()
            self.send_response(status)
            sent = {**headers, "Content-Type": "application/json", "Content-Length": str(len(data))}
            for name, value in sent.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the callers count what they need

    return Handler
