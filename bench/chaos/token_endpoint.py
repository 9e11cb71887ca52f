"""The run's OAuth token endpoint: real tokens, with 503s and bursts of 429 on purpose.

mailpipe must ride out a misbehaving identity provider without losing a job;
the sink asks this endpoint whether a token it is shown is one it issued.
"""

from __future__ import annotations

import json
import random
import secrets
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

from bench.chaos.plan import TOKEN_LIFETIME_SECONDS


class FlakyTokenEndpoint:
    """A client-credentials token endpoint that fails on purpose.

    A seeded fraction of requests gets ``503 temporarily_unavailable``;
    ``throttle_next(n)`` makes the next n requests get 429 with Retry-After.
    Tokens live ``lifetime_seconds``; the sink asks ``valid(token)`` at AUTH.
    ``counts`` keys: requests, 503, 429, 401, issued.
    """

    def __init__(self, clients: dict[str, str], *, unavailable_fraction: float, seed: int) -> None:
        self.clients = clients
        self.unavailable_fraction = unavailable_fraction
        self.issued: dict[str, float] = {}  # token → expiry (time.time())
        self.counts: Counter[str] = Counter()
        self._random = random.Random(seed)  # noqa: S311 (reproducible faults, not crypto)
        self._throttled = 0
        self._retry_after_seconds = 0
        self._lock = threading.Lock()
        self.http = ThreadingHTTPServer(("127.0.0.1", 0), _token_handler(self))
        self.http.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}/token"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def throttle_next(self, requests: int, retry_after_seconds: int) -> None:
        with self._lock:
            self._throttled, self._retry_after_seconds = requests, retry_after_seconds

    def valid(self, token: str) -> bool:
        with self._lock:
            return self.issued.get(token, 0.0) > time.time()

    def answer(self, form: dict[str, str]) -> tuple[int, dict[str, Any], dict[str, str]]:
        """(status, JSON body, headers) for one token request."""
        with self._lock:
            self.counts["requests"] += 1
            if self._throttled:
                self._throttled -= 1
                self.counts["429"] += 1
                body = {"error": "temporarily_unavailable", "error_description": "throttled"}
                return 429, body, {"Retry-After": str(self._retry_after_seconds)}
            if self._random.random() < self.unavailable_fraction:
                self.counts["503"] += 1
                return 503, {"error": "temporarily_unavailable"}, {}
            if self.clients.get(form.get("client_id", "")) != form.get("client_secret"):
                self.counts["401"] += 1
                return 401, {"error": "invalid_client"}, {}
            token = secrets.token_urlsafe(32)
            self.issued[token] = time.time() + TOKEN_LIFETIME_SECONDS
            self.counts["issued"] += 1
        issued: dict[str, Any] = {"access_token": token, "token_type": "Bearer"}
        return 200, {**issued, "expires_in": TOKEN_LIFETIME_SECONDS}, {}

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()


def _token_handler(endpoint: FlakyTokenEndpoint) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            status, body, headers = endpoint.answer(form)
            data = json.dumps(body).encode()
            self.send_response(status)
            headers.update({"Content-Type": "application/json", "Content-Length": str(len(data))})
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the counts say it all

    return Handler
