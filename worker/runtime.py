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
from celery import Celery

from worker.celery import app, producer_app
from worker.credentials import Credentials, Profiles, TokenCache, load_profiles
from worker.delivery import Leases, RateLimiter
from worker.metrics import Metrics
from worker.settings import Settings, get_settings
from worker.store import DatabaseRefreshTokenStore, Store
from worker.transport import Transport
from worker.transport.smtp import ConnectionSlots, SmtpPool


@dataclass
class Runtime:
    settings: Settings
    profiles: Profiles
    redis: redis.Redis
    store: Store
    refresh_tokens: DatabaseRefreshTokenStore
    credentials: Credentials
    transport: Transport
    limiter: RateLimiter
    metrics: Metrics
    leases: Leases
    # Publishes task messages to this runtime's broker.
    celery: Celery

    def close(self) -> None:
        self.leases.close()
        self.transport.close()
        self.credentials.cache.close()
        self.store.dispose()
        self.redis.close()
        if self.celery is not app:
            self.celery.close()


def build_runtime(settings: Settings | None = None) -> Runtime:
    """A runtime for ``settings`` (default: this process's, from the environment).

    With settings of its own it publishes through its own Celery app, to its
    own broker; otherwise through the process's app.
    """
    celery = app if settings is None else producer_app(settings)
    settings = settings or get_settings()
    profiles = load_profiles(settings.profiles_file, os.environ)
    fernet = settings.fernet()
    client = redis.Redis.from_url(settings.redis_url.get_secret_value())
    store = Store(settings.database_url.get_secret_value())
    refresh_tokens = DatabaseRefreshTokenStore(store, fernet)
    cache = TokenCache.from_settings(settings, client, fernet)
    credentials = Credentials(profiles, cache, refresh_tokens)
    slots = ConnectionSlots(client, lease_seconds=settings.smtp_slot_lease_seconds)
    return Runtime(
        settings=settings,
        profiles=profiles,
        redis=client,
        store=store,
        refresh_tokens=refresh_tokens,
        credentials=credentials,
        transport=SmtpPool.from_settings(settings, credentials, slots),
        limiter=RateLimiter(client),
        metrics=Metrics(client),
        leases=Leases(
            store,
            lease_seconds=settings.send_lease_seconds,
            max_hold_seconds=settings.send_max_seconds,
        ),
        celery=celery,
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
