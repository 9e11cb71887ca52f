"""A rejected token dropped in every process: a Redis pub/sub broadcast and its listener.

Pub/sub delivers only to those connected at the time, so a listener that
lost Redis, or a process just forked from one that had no listener, may have
missed an invalidation: it then drops every memory copy (``on_missed``).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import redis

from worker import redis_keys

log = logging.getLogger(__name__)


def broadcast(client: redis.Redis, profile: str) -> None:
    """Tell every process that ``profile``'s token was rejected."""
    client.publish(redis_keys.TOKEN_INVALIDATED_CHANNEL, profile)


class InvalidationListener:
    """This process's subscription to invalidations: one pub/sub thread, started on first use."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        on_invalidated: Callable[[str], None],
        on_missed: Callable[[], None],
    ) -> None:
        self.redis = client
        self._on_invalidated = on_invalidated
        self._on_missed = on_missed
        self._guard = threading.Lock()
        self._thread: Any = None
        self._closing = False
        self._pid: int | None = None

    def ensure_running(self) -> None:
        """Subscribe once per process (again after a fork: threads do not survive one)."""
        if self._pid == os.getpid():
            return
        with self._guard:
            if self._pid == os.getpid():
                return
            self._on_missed()
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            pubsub.subscribe(**{redis_keys.TOKEN_INVALIDATED_CHANNEL: self._on_message})
            self._thread = pubsub.run_in_thread(
                sleep_time=1.0, daemon=True, exception_handler=self._on_error
            )
            self._pid = os.getpid()

    def stop(self) -> None:
        with self._guard:
            self._closing = True
            if self._thread is not None:
                self._thread.stop()
                self._thread = None

    def _on_message(self, message: dict[str, Any]) -> None:
        profile = message["data"]
        self._on_invalidated(profile.decode() if isinstance(profile, bytes) else str(profile))

    def _on_error(self, exc: BaseException, pubsub: Any, thread: Any) -> None:
        # Invalidations may have been missed while disconnected: drop every
        # memory copy; the pubsub object resubscribes when it reconnects.
        self._on_missed()
        if self._closing:
            return
        log.warning("token invalidation listener lost Redis (%s); retrying", type(exc).__name__)
        time.sleep(1.0)
