"""Everything a worker process (or the CLI) works with, built once per process.

A producer's part (``worker.queue.producer``) plus credentials and a transport.

Celery's prefork pool forks after importing the app, and sockets, Redis
connections and SMTP sessions must not cross a fork: ``get_runtime()`` builds
a fresh runtime the first time it is called in each process.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

import redis

from worker.credentials import Credentials, TokenCache
from worker.delivery import Leases, RateLimiter
from worker.metrics import Metrics
from worker.queue.celery_app import app, producer_app
from worker.queue.producer import Producer, profiles_file, reset_producer, use_as_producer
from worker.settings import Settings, get_settings
from worker.store import DatabaseRefreshTokenStore, Store, check_key
from worker.transport import Transport
from worker.transport.graph import GraphTransport
from worker.transport.router import TransportRouter
from worker.transport.slots import ConnectionSlots
from worker.transport.smtp import SmtpPool

__all__ = ["Runtime", "build_runtime", "get_runtime", "reset_runtime"]


@dataclass
class Runtime(Producer):
    """What a worker process works with: the producer's parts, credentials and a transport."""

    refresh_tokens: DatabaseRefreshTokenStore
    credentials: Credentials
    transport: Transport
    limiter: RateLimiter
    leases: Leases

    def close(self) -> None:
        self.leases.close()
        self.transport.close()
        self.credentials.cache.close()
        super().close()


def build_runtime(settings: Settings | None = None) -> Runtime:
    """A worker's runtime: every profile's secrets read, the key checked against the store."""
    celery = app if settings is None else producer_app(settings)
    settings = settings or get_settings()
    profiles = profiles_file(settings, secrets=True)
    fernet = settings.fernet()
    client = redis.Redis.from_url(settings.redis_url.get_secret_value())
    store = Store(settings.database_url.get_secret_value())
    try:
        store.check_schema()  # before the key check, which reads a table
        check_key(store, fernet)
    except BaseException:
        store.dispose()  # the connection the checks pooled, or it leaks with the engine
        raise
    refresh_tokens = DatabaseRefreshTokenStore(store, fernet)
    cache = TokenCache.from_settings(settings, client, fernet)
    credentials = Credentials(profiles, cache, refresh_tokens)
    slots = ConnectionSlots(client, lease_seconds=settings.smtp_slot_lease_seconds)
    return Runtime(
        settings=settings,
        profiles_file=profiles,
        redis=client,
        store=store,
        metrics=Metrics(client),
        celery=celery,
        refresh_tokens=refresh_tokens,
        credentials=credentials,
        transport=TransportRouter(
            {
                "smtp": SmtpPool.from_settings(settings, credentials, slots),
                "graph": GraphTransport.from_settings(settings, credentials, slots),
            },
        ),
        limiter=RateLimiter(client),
        leases=Leases(
            store,
            lease_seconds=settings.send_lease_seconds,
            max_hold_seconds=settings.send_max_seconds,
        ),
    )


_lock = threading.Lock()
_current: tuple[int, Runtime] | None = None


def get_runtime() -> Runtime:
    """This process's runtime (built on first use, again after a fork)."""
    global _current
    with _lock:
        if _current is None or _current[0] != os.getpid():
            _current = (os.getpid(), build_runtime())
            use_as_producer(_current[1])  # what this process publishes goes through it
        return _current[1]


def reset_runtime() -> None:
    """Drop this process's runtime and producer (tests, and worker shutdown)."""
    global _current
    with _lock:
        if _current is not None and _current[0] == os.getpid():
            _current[1].close()
        _current = None
    reset_producer()
