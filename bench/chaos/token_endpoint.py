"""The run's OAuth token endpoint: real tokens, with 503s and bursts of 429 on purpose.

mailpipe must ride out a misbehaving identity provider without losing a job;
the sink asks this endpoint whether a token it is shown is one it issued.
"""

from __future__ import annotations

import random
import secrets
import threading
import time
from collections import Counter
from typing import Any

from bench.chaos.plan import TOKEN_LIFETIME_SECONDS
from tests.fakes.token_endpoint import FormTokenEndpoint


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
        self._endpoint = FormTokenEndpoint(self.answer)
        self.url = self._endpoint.url

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
        self._endpoint.close()
