"""Access tokens shared by every worker process through Redis, fetched once per lifetime.

Lookup order: this process's memory (memory_copy), then Redis (sealed_store),
then the token endpoint under a lock across processes (refresh). Invalidation
(after an SMTP 535) deletes the rejected token from Redis and is broadcast on
a pub/sub channel so every process drops its memory copy (invalidation).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import httpx
import redis
from cryptography.fernet import MultiFernet

from providers import Grant, RetryPolicy, Token, TokenEndpoint
from worker import redis_keys
from worker.credentials.health import TokenHealth
from worker.credentials.tokens.cached_token import CachedToken
from worker.credentials.tokens.invalidation import InvalidationListener, broadcast
from worker.credentials.tokens.memory_copy import MemoryCopy
from worker.credentials.tokens.refresh import SingleFlightRefresh
from worker.credentials.tokens.sealed_store import SealedTokens
from worker.errors import TokenCacheError
from worker.metrics import Metrics, Samples
from worker.redis_adapter import redis_errors
from worker.settings import DEFAULTS, Settings

log = logging.getLogger(__name__)


class TokenCache:
    """Per-profile access tokens: memory → Redis → token endpoint (single flight)."""

    def __init__(
        self,
        client: redis.Redis,
        fernet: MultiFernet,
        http: httpx.Client,
        *,
        policy: RetryPolicy | None = None,
        skew_seconds: float = DEFAULTS.token_skew_seconds,
        lock_seconds: float = DEFAULTS.token_lock_seconds,
        wait_seconds: float = DEFAULTS.token_wait_seconds,
        local_copy: bool = True,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.redis = client
        self.metrics = Metrics(client)
        self.health = TokenHealth(client, self.metrics)
        self.endpoint = TokenEndpoint(http, policy, sleep=sleep, on_result=self._count_request)
        self._sealed = SealedTokens(client, fernet)
        self._memory = MemoryCopy(enabled=local_copy)
        self._single_flight = SingleFlightRefresh(
            self._sealed, self.endpoint, self.health,
            skew_seconds=skew_seconds, lock_seconds=lock_seconds, wait_seconds=wait_seconds,
            sleep=sleep,
        )  # fmt: skip
        self._listener = InvalidationListener(
            client, on_invalidated=self._forget, on_missed=self._memory.clear
        )

    @classmethod
    def from_settings(
        cls, settings: Settings, client: redis.Redis, fernet: MultiFernet
    ) -> TokenCache:
        """The token cache as the settings describe it, with its own HTTP client."""
        http = httpx.Client(
            timeout=httpx.Timeout(
                settings.token_read_timeout_seconds,
                connect=settings.token_connect_timeout_seconds,
            )
        )
        return cls(
            client,
            fernet,
            http,
            policy=settings.token_retry_policy(),
            skew_seconds=settings.token_skew_seconds,
            lock_seconds=settings.token_lock_seconds,
            wait_seconds=settings.token_wait_seconds,
        )

    def get(self, grant: Grant, *, force: bool = False) -> CachedToken:
        """A token for ``grant``'s profile with at least ``skew_seconds`` left.

        ``force`` skips both caches and fetches a new token (still under the
        lock, so it never races a worker's refresh).
        """
        single_flight = self._single_flight
        with _redis_errors(grant.name):
            if self._memory.enabled:
                self._listener.ensure_running()
            fingerprint = grant.fingerprint
            remembered = self._memory.get(grant.name, fingerprint)
            if remembered is not None and not force and single_flight.usable(remembered):
                return CachedToken(remembered, "memory")
            key = redis_keys.token(grant.name, fingerprint)
            cached = self._sealed.read(key)
            if cached is not None and not force and single_flight.usable(cached):
                self._memory.keep(grant.name, fingerprint, cached)
                return CachedToken(cached, "redis")
            stale = cached or remembered
            if stale is not None and not force and single_flight.paused(grant.name, stale):
                return CachedToken(stale, "stale")
            result = single_flight.refresh(grant, key, stale, force=force)
            self._memory.keep(grant.name, fingerprint, result.token)
            return result

    def expires_within(self, grant: Grant, seconds: float) -> bool:
        """True when the shared cache holds no token for this grant, or one ending within
        ``seconds``: beat then refreshes it, so that every profile's token stays warm."""
        with _redis_errors(grant.name):
            cached = self._sealed.read(redis_keys.token(grant.name, grant.fingerprint))
        return cached is None or cached.expires_within(seconds)

    def invalidate(self, profile: str, rejected: Token) -> None:
        """Forget ``rejected`` everywhere: Redis, this process and (via pub/sub) all others.

        Only that exact token is deleted, so a process reporting a 535 late
        does not throw away the fresh token another process already fetched.
        """
        with _redis_errors(profile):
            self._forget(profile)
            self._sealed.delete(profile, rejected)
            broadcast(self.redis, profile)
            log.info("dropped the rejected token of profile %s in every process", profile)

    def token_requests(self, profile: str) -> int:
        """How many HTTP requests went to this profile's token endpoint (all processes)."""
        with _redis_errors(profile):
            counts = self.metrics.counter("token_requests")
        return sum(n for labels, n in counts.items() if ("profile", profile) in labels)

    def rotate_key(self) -> tuple[int, int]:
        """Re-encrypt every cached token under the newest key: (rotated, dropped unreadable)."""
        with _redis_errors("*"):
            return self._sealed.rotate()

    def close(self) -> None:
        """Stop this process's invalidation listener."""
        self._listener.stop()
        self._memory.clear()
        self.endpoint.close()

    def _forget(self, profile: str) -> None:
        self._memory.forget(profile)
        self._single_flight.resume(profile)

    def _count_request(self, profile: str, result: str) -> None:
        labels = {"profile": profile, "result": result}
        self.metrics.record(Samples().count("token_requests", labels))


def _redis_errors(profile: str) -> Any:
    return redis_errors(f"profile '{profile}': token cache", TokenCacheError)
