"""Access tokens shared by every worker process through Redis, fetched once per lifetime.

Lookup order: this process's memory, then Redis, then the token endpoint. A
refresh is single-flight across processes (redis.io SET "Patterns"):

1. take the profile's lock (redis-py's ``Lock``: SET NX PX with a random
   token); its TTL outlives the longest refresh, so a crashed holder's lock
   expires by itself;
2. re-read the cache after taking the lock (someone may just have refreshed);
3. fetch, store encrypted with TTL = real expiry, release by compare-and-delete.

A token counts as expired ``skew_seconds`` early. Inside that window the
still-valid token keeps being used when the refresh fails (as MSAL does) and
by the processes that lose the race; with no valid token they poll the cache
with jitter, for a bounded time.

Invalidation (after an SMTP 535) deletes the rejected token from Redis and is
broadcast on a pub/sub channel so every process drops its memory copy.
"""

from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import httpx
import redis
from cryptography.fernet import InvalidToken, MultiFernet

from providers import Grant, ProviderError, RefreshTokenGrant, RetryPolicy, Token, TokenEndpoint
from worker import redis_keys
from worker.credentials.health import TokenHealth
from worker.errors import TokenCacheError
from worker.metrics import Metrics, Samples
from worker.redis_adapter import Lock, redis_errors
from worker.settings import DEFAULTS, Settings

log = logging.getLogger(__name__)

TokenSource = Literal["memory", "redis", "fresh", "stale"]

# After a failed refresh inside the skew window, wait this long before the
# next try instead of stalling every message on a struggling endpoint.
_FAILED_REFRESH_PAUSE_SECONDS = 30.0


@dataclass(frozen=True)
class CachedToken:
    """A token and where this lookup found it (recorded with each attempt)."""

    token: Token
    source: TokenSource


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
        self.fernet = fernet
        self.metrics = Metrics(client)
        self.health = TokenHealth(client, self.metrics)
        self.endpoint = TokenEndpoint(http, policy, sleep=sleep, on_result=self._count_request)
        self.skew_seconds = skew_seconds
        self.lock_seconds = lock_seconds
        self.wait_seconds = wait_seconds
        self.local_copy = local_copy
        self._sleep = sleep
        self._memory: dict[str, tuple[str, Token]] = {}
        self._paused_until: dict[str, float] = {}
        self._guard = threading.Lock()
        self._listener: Any = None
        self._closing = False
        self._listener_pid: int | None = None

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

    # -- public -----------------------------------------------------------

    def get(self, grant: Grant, *, force: bool = False) -> CachedToken:
        """A token for ``grant``'s profile with at least ``skew_seconds`` left.

        ``force`` skips both caches and fetches a new token (still under the
        lock, so it never races a worker's refresh).
        """
        with _redis_errors(grant.name):
            self._ensure_listener()
            fingerprint = grant.fingerprint
            remembered = self._remembered(grant.name, fingerprint)
            if remembered is not None and not force and self._usable(remembered):
                return CachedToken(remembered, "memory")
            key = redis_keys.token(grant.name, fingerprint)
            cached = self._read(key)
            if cached is not None and not force and self._usable(cached):
                self._remember(grant.name, fingerprint, cached)
                return CachedToken(cached, "redis")
            stale = cached or remembered
            if stale is not None and not force and self._refresh_paused(grant.name, stale):
                return CachedToken(stale, "stale")
            result = self._refresh(grant, key, stale, force=force)
            self._remember(grant.name, fingerprint, result.token)
            return result

    def expires_within(self, grant: Grant, seconds: float) -> bool:
        """True when the shared cache holds no token for this grant, or one ending within
        ``seconds``: beat then refreshes it, so that every profile's token stays warm."""
        with _redis_errors(grant.name):
            cached = self._read(redis_keys.token(grant.name, grant.fingerprint))
        return cached is None or cached.expires_within(seconds)

    def invalidate(self, profile: str, rejected: Token) -> None:
        """Forget ``rejected`` everywhere: Redis, this process and (via pub/sub) all others.

        Only that exact token is deleted, so a process reporting a 535 late
        does not throw away the fresh token another process already fetched.
        """
        with _redis_errors(profile):
            self._forget(profile)
            for key in self.redis.scan_iter(match=redis_keys.token(profile, "*"), count=100):
                self._delete_if_holds(key, rejected)
            self.redis.publish(redis_keys.TOKEN_INVALIDATED_CHANNEL, profile)
            log.info("dropped the rejected token of profile %s in every process", profile)

    def token_requests(self, profile: str) -> int:
        """How many HTTP requests went to this profile's token endpoint (all processes)."""
        with _redis_errors(profile):
            counts = self.metrics.counter("token_requests")
        return sum(n for labels, n in counts.items() if ("profile", profile) in labels)

    def rotate_key(self) -> tuple[int, int]:
        """Re-encrypt every cached token under the newest key: (rotated, dropped unreadable)."""
        rotated = dropped = 0
        with _redis_errors("*"):
            for key in self.redis.scan_iter(match=redis_keys.token("*", "*"), count=100):
                raw, ttl_ms = self.redis.get(key), self.redis.pttl(key)
                if raw is None or ttl_ms <= 0:
                    continue
                try:
                    self.redis.set(key, self.fernet.rotate(raw), px=ttl_ms)
                    rotated += 1
                except InvalidToken:  # a key no longer listed: a cache miss, fetched again
                    self.redis.delete(key)
                    dropped += 1
        return rotated, dropped

    def close(self) -> None:
        """Stop this process's invalidation listener."""
        with self._guard:
            self._closing = True
            if self._listener is not None:
                self._listener.stop()
                self._listener = None
            self._memory.clear()
        self.endpoint.close()

    # -- refresh ----------------------------------------------------------

    def _refresh(self, grant: Grant, key: str, stale: Token | None, *, force: bool) -> CachedToken:
        give_up_at = time.monotonic() + self.wait_seconds
        while True:
            lock = Lock(
                self.redis, redis_keys.token_lock(_lock_name(grant)), self.lock_seconds,
                TokenCacheError,
            )  # fmt: skip
            if lock.acquire():
                try:
                    return self._refresh_locked(grant, key, stale, force=force)
                finally:
                    lock.release()
            # Another process is refreshing. While the old token still works
            # (only inside the skew window), use it rather than wait: the
            # holder may be stuck on a slow endpoint or dead, and its lock
            # then lasts minutes.
            if stale is not None and not stale.expires_within(0) and not force:
                return CachedToken(stale, "stale")
            self._sleep(random.uniform(0.05, 0.15))  # noqa: S311 (jitter, not crypto)
            cached = self._read(key)
            if cached is not None and self._usable(cached) and cached != stale:
                return CachedToken(cached, "redis")
            if time.monotonic() > give_up_at:
                if not isinstance(grant, RefreshTokenGrant):
                    # The holder is stuck or died holding the lock (it lasts
                    # minutes). A grant that does not rotate anything can be
                    # asked again safely: one extra token request, not a stall.
                    log.warning(
                        "profile %s: the token lock was held %.0fs; fetching without it",
                        grant.name,
                        self.wait_seconds,
                    )
                    return self._refresh_locked(grant, key, stale, force=force)
                raise TokenCacheError(
                    f"profile '{grant.name}': no token after {self.wait_seconds:.0f}s waiting "
                    "for another process's refresh"
                )

    def _refresh_locked(
        self, grant: Grant, key: str, stale: Token | None, *, force: bool
    ) -> CachedToken:
        if not force:
            cached = self._read(key)
            if cached is not None and self._usable(cached):
                return CachedToken(cached, "redis")
        try:
            token = grant.fetch(self.endpoint)
        except ProviderError as exc:
            self.health.failed(grant.name, exc)
            if stale is not None and not stale.expires_within(0):
                self._paused_until[grant.name] = time.monotonic() + _FAILED_REFRESH_PAUSE_SECONDS
                log.warning(
                    "profile %s: refresh failed, using the cached token until it expires "
                    "in %.0fs: %s",
                    grant.name,
                    stale.expires_at - time.time(),
                    exc,
                )
                return CachedToken(stale, "stale")
            raise
        self._paused_until.pop(grant.name, None)
        self._write(key, token)
        self.health.refreshed(grant.name, token)
        log.info(
            "profile %s: new token from the token endpoint, valid for %.0fs",
            grant.name,
            token.expires_at - time.time(),
        )
        return CachedToken(token, "fresh")

    def _refresh_paused(self, profile: str, stale: Token) -> bool:
        paused_until = self._paused_until.get(profile)
        return (
            paused_until is not None
            and time.monotonic() < paused_until
            and not stale.expires_within(0)
        )

    def _usable(self, token: Token) -> bool:
        return not token.expires_within(self.skew_seconds)

    def _count_request(self, profile: str, result: str) -> None:
        labels = {"profile": profile, "result": result}
        self.metrics.record(Samples().count("token_requests", labels))

    # -- Redis values -----------------------------------------------------

    def _delete_if_holds(self, key: str | bytes, rejected: Token) -> None:
        """Delete ``key`` only while it holds ``rejected``, never a token written since."""

        def delete(pipe: Any) -> None:
            token = self._decrypt(pipe.get(key))
            if token is not None and token.access_token == rejected.access_token:
                pipe.multi()
                pipe.delete(key)

        self.redis.transaction(delete, key)

    def _read(self, key: str) -> Token | None:
        return self._decrypt(self.redis.get(key))

    def _write(self, key: str, token: Token) -> None:
        ttl_ms = int((token.expires_at - time.time()) * 1000)
        if ttl_ms <= 0:
            return
        payload = json.dumps(
            {
                "access_token": token.access_token,
                "expires_at": token.expires_at,
                "token_type": token.token_type,
                "scope": token.scope,
            }
        )
        self.redis.set(key, self.fernet.encrypt(payload.encode()), px=ttl_ms)

    def _decrypt(self, raw: Any) -> Token | None:
        if raw is None:
            return None
        try:
            data = json.loads(self.fernet.decrypt(raw))
        except InvalidToken:
            # Encrypted with a key no longer configured (the key check at start
            # keeps processes of one database on one key): a miss.
            log.warning("a cached token cannot be decrypted with MAILPIPE_SECRET_KEY; ignored")
            return None
        return Token(
            access_token=data["access_token"],
            expires_at=float(data["expires_at"]),
            token_type=data.get("token_type", "Bearer"),
            scope=data.get("scope"),
        )

    # -- this process's copy ----------------------------------------------

    def _remembered(self, profile: str, fingerprint: str) -> Token | None:
        if not self.local_copy:
            return None
        entry = self._memory.get(profile)
        if entry is None or entry[0] != fingerprint:
            return None
        return entry[1]

    def _remember(self, profile: str, fingerprint: str, token: Token) -> None:
        if self.local_copy:
            self._memory[profile] = (fingerprint, token)

    def _forget(self, profile: str) -> None:
        self._memory.pop(profile, None)
        self._paused_until.pop(profile, None)

    def _ensure_listener(self) -> None:
        """Subscribe to invalidations once per process (again after a fork)."""
        if not self.local_copy or self._listener_pid == os.getpid():
            return
        with self._guard:
            if self._listener_pid == os.getpid():
                return
            self._memory.clear()
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            pubsub.subscribe(**{redis_keys.TOKEN_INVALIDATED_CHANNEL: self._on_invalidated})
            self._listener = pubsub.run_in_thread(
                sleep_time=1.0, daemon=True, exception_handler=self._on_listener_error
            )
            self._listener_pid = os.getpid()

    def _on_invalidated(self, message: dict[str, Any]) -> None:
        profile = message["data"]
        self._forget(profile.decode() if isinstance(profile, bytes) else str(profile))

    def _on_listener_error(self, exc: BaseException, pubsub: Any, thread: Any) -> None:
        # Invalidations may have been missed while disconnected: drop every
        # memory copy; the pubsub object resubscribes when it reconnects.
        self._memory.clear()
        if self._closing:
            return
        log.warning("token invalidation listener lost Redis (%s); retrying", type(exc).__name__)
        time.sleep(1.0)


def _redis_errors(profile: str) -> Any:
    return redis_errors(f"profile '{profile}': token cache", TokenCacheError)


def _lock_name(grant: Grant) -> str:
    """The lock a refresh takes: the profile's, for every grant that rotates its refresh
    token (one refresh token may only be used once, whichever grant uses it)."""
    return grant.owner if isinstance(grant, RefreshTokenGrant) else grant.name
