"""The one adapter for redis-py: its errors become ours here, and its lock is used here.

Redis holds what every worker process shares (the token cache, sending
limits, connection slots, beat locks). When it cannot answer, the caller gets
an ``UnavailableError`` (transient) naming what was unavailable, never a
redis-py exception.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType

import redis
from redis.exceptions import LockError

from worker.errors import UnavailableError

log = logging.getLogger(__name__)


@contextmanager
def redis_errors(what: str, error: type[UnavailableError] = UnavailableError) -> Iterator[None]:
    """Translate redis-py's errors into ``error`` ("<what> unavailable (…)")."""
    try:
        yield
    except redis.RedisError as exc:
        raise error(f"{what} unavailable ({type(exc).__name__}: {exc})") from exc


class Lock:
    """A lock across processes that never blocks: ``with Lock(...) as held:``.

    redis-py's ``Lock`` (SET NX PX with a random token, released by a
    compare-and-delete script), so a holder that died frees it after
    ``ttl_seconds`` and a late holder never releases someone else's lock.
    """

    def __init__(
        self,
        client: redis.Redis,
        key: str,
        ttl_seconds: float,
        error: type[UnavailableError] = UnavailableError,
    ) -> None:
        self.key = key
        self._error = error
        self._lock = client.lock(key, timeout=ttl_seconds, blocking=False)

    def acquire(self) -> bool:
        with redis_errors(f"lock {self.key}", self._error):
            return bool(self._lock.acquire(blocking=False))

    def release(self) -> None:
        """Release the lock if it is still ours.

        One that expired (and may have been taken since) is left alone; if
        Redis is unreachable the lock expires by itself after its TTL.
        """
        try:
            self._lock.release()
        except LockError:
            pass
        except redis.RedisError as exc:
            log.warning("could not release %s (%s); it expires by itself", self.key, exc)

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._lock.local.token is not None:
            self.release()
