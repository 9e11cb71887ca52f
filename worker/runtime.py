"""Everything a worker process (or the CLI) works with, built once per process.

Celery's prefork pool forks after importing the app, and sockets, Redis
connections and SMTP sessions must not cross a fork: ``get_runtime()`` builds
a fresh runtime the first time it is called in each process.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

import redis

from worker.credentials import Credentials, token_cache
from worker.profiles import Profiles, load_profiles
from worker.rate_limit import RateLimiter
from worker.settings import Settings, get_settings
from worker.smtp_pool import SmtpPool
from worker.smtp_slots import ConnectionSlots
from worker.store import DatabaseRefreshTokenStore, Store


@dataclass
class Runtime:
    settings: Settings
    profiles: Profiles
    redis: redis.Redis
    store: Store
    refresh_tokens: DatabaseRefreshTokenStore
    credentials: Credentials
    pool: SmtpPool
    limiter: RateLimiter

    def close(self) -> None:
        self.pool.close()
        self.credentials.cache.close()
        self.store.engine.dispose()
        self.redis.close()


def build_runtime(settings: Settings | None = None) -> Runtime:
    settings = settings or get_settings()
    profiles = load_profiles(settings.profiles_file, os.environ)
    fernet = settings.fernet()
    client = redis.Redis.from_url(settings.redis_url.get_secret_value())
    store = Store(settings.database_url.get_secret_value())
    refresh_tokens = DatabaseRefreshTokenStore(store, fernet)
    credentials = Credentials(profiles, token_cache(settings, client, fernet), refresh_tokens)
    pool = SmtpPool(
        credentials,
        slots=ConnectionSlots(client),
        timeout_seconds=settings.smtp_timeout_seconds,
        max_messages_per_connection=settings.smtp_max_messages_per_connection,
        idle_timeout_seconds=settings.smtp_idle_timeout_seconds,
        noop_after_seconds=settings.smtp_noop_after_seconds,
        slot_wait_seconds=settings.smtp_slot_wait_seconds,
    )
    return Runtime(
        settings=settings,
        profiles=profiles,
        redis=client,
        store=store,
        refresh_tokens=refresh_tokens,
        credentials=credentials,
        pool=pool,
        limiter=RateLimiter(client),
    )


_lock = threading.Lock()
_current: tuple[int, Runtime] | None = None


def get_runtime() -> Runtime:
    """This process's runtime (built on first use, again after a fork)."""
    global _current
    with _lock:
        if _current is None or _current[0] != os.getpid():
            _current = (os.getpid(), build_runtime())
        return _current[1]


def reset_runtime() -> None:
    """Drop this process's runtime (tests, and worker shutdown)."""
    global _current
    with _lock:
        if _current is not None and _current[0] == os.getpid():
            _current[1].close()
        _current = None
