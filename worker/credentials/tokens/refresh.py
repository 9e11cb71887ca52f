"""A new token fetched once for all processes (a Redis lock), and when an old one still serves.

Single flight (redis.io SET "Patterns"):

1. take the profile's lock (redis-py's ``Lock``: SET NX PX with a random
   token); its TTL outlives the longest refresh, so a crashed holder's lock
   expires by itself;
2. re-read the cache after taking the lock (someone may just have refreshed);
3. fetch, store encrypted with TTL = real expiry, release by compare-and-delete.

A token counts as expired ``skew_seconds`` early. Inside that window the
still-valid token keeps being used when the refresh fails (as MSAL does) and
by the processes that lose the race; with no valid token they poll the cache
with jitter, for a bounded time.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable

from providers import Grant, ProviderError, RefreshTokenGrant, Token, TokenEndpoint
from worker import redis_keys
from worker.credentials.health import TokenHealth
from worker.credentials.tokens.cached_token import CachedToken
from worker.credentials.tokens.sealed_store import SealedTokens
from worker.errors import TokenCacheError
from worker.redis_adapter import Lock

log = logging.getLogger(__name__)

# After a failed refresh inside the skew window, wait this long before the
# next try instead of stalling every message on a struggling endpoint.
_FAILED_REFRESH_PAUSE_SECONDS = 30.0


class SingleFlightRefresh:
    """Fetches a profile's token under its lock, or says which cached token serves instead."""

    def __init__(
        self,
        store: SealedTokens,
        endpoint: TokenEndpoint,
        health: TokenHealth,
        *,
        skew_seconds: float,
        lock_seconds: float,
        wait_seconds: float,
        sleep: Callable[[float], None],
    ) -> None:
        self.store = store
        self.endpoint = endpoint
        self.health = health
        self.skew_seconds = skew_seconds
        self.lock_seconds = lock_seconds
        self.wait_seconds = wait_seconds
        self._sleep = sleep
        self._paused_until: dict[str, float] = {}

    def usable(self, token: Token) -> bool:
        """Whether ``token`` has at least ``skew_seconds`` left (else it is due a refresh)."""
        return not token.expires_within(self.skew_seconds)

    def paused(self, profile: str, stale: Token) -> bool:
        """Whether ``stale`` serves on without a refresh: one just failed and it still works."""
        paused_until = self._paused_until.get(profile)
        return (
            paused_until is not None
            and time.monotonic() < paused_until
            and not stale.expires_within(0)
        )

    def resume(self, profile: str) -> None:
        """Let the next lookup refresh at once (the token was dropped)."""
        self._paused_until.pop(profile, None)

    def refresh(self, grant: Grant, key: str, stale: Token | None, *, force: bool) -> CachedToken:
        """A token for ``grant`` under ``key``: fetched, another process's, or ``stale``."""
        give_up_at = time.monotonic() + self.wait_seconds
        while True:
            lock = Lock(
                self.store.redis, redis_keys.token_lock(_lock_name(grant)), self.lock_seconds,
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
            cached = self.store.read(key)
            if cached is not None and self.usable(cached) and cached != stale:
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
            cached = self.store.read(key)
            if cached is not None and self.usable(cached):
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
        self.store.write(key, token)
        self.health.refreshed(grant.name, token)
        log.info(
            "profile %s: new token from the token endpoint, valid for %.0fs",
            grant.name,
            token.expires_at - time.time(),
        )
        return CachedToken(token, "fresh")


def _lock_name(grant: Grant) -> str:
    """The lock a refresh takes: the profile's, for every grant that rotates its refresh
    token (one refresh token may only be used once, whichever grant uses it)."""
    return grant.owner if isinstance(grant, RefreshTokenGrant) else grant.name
