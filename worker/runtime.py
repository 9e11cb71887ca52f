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
from worker.credentials import Credentials, Profiles, ProfilesFile, TokenCache
from worker.delivery import Leases, RateLimiter
from worker.metrics import Metrics
from worker.settings import Settings, get_settings
from worker.store import DatabaseRefreshTokenStore, Store, check_key
from worker.transport import Transport
from worker.transport.graph import GraphTransport
from worker.transport.router import TransportRouter
from worker.transport.slots import ConnectionSlots
from worker.transport.smtp import SmtpPool


@dataclass
class Producer:
    """What putting jobs in needs: sender profiles (without secrets), the store, the broker.

    A producer (the CLI's send, the HTTP intake, an incident system calling
    notify) holds no client secret, password, private key or Fernet key.
    """

    settings: Settings
    profiles_file: ProfilesFile
    redis: redis.Redis
    store: Store
    metrics: Metrics
    # Publishes task messages to this runtime's broker.
    celery: Celery

    @property
    def profiles(self) -> Profiles:
        """The profiles in use (an edited file is picked up without a restart)."""
        return self.profiles_file.current()

    def close(self) -> None:
        self.store.dispose()
        self.redis.close()
        if self.celery is not app:
            self.celery.close()


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


def build_producer(settings: Settings | None = None) -> Producer:
    """A producer for ``settings`` (default: this process's, from the environment).

    With settings of its own it publishes through its own Celery app, to its
    own broker; otherwise through the process's app.
    """
    celery = app if settings is None else producer_app(settings)
    settings = settings or get_settings()
    client = redis.Redis.from_url(settings.redis_url.get_secret_value())
    return Producer(
        settings=settings,
        profiles_file=_profiles_file(settings, secrets=False),
        redis=client,
        store=Store(settings.database_url.get_secret_value()),
        metrics=Metrics(client),
        celery=celery,
    )


def build_runtime(settings: Settings | None = None) -> Runtime:
    """A worker's runtime: every profile's secrets read, the key checked against the store."""
    celery = app if settings is None else producer_app(settings)
    settings = settings or get_settings()
    profiles = _profiles_file(settings, secrets=True)
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
            credentials,
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


def _profiles_file(settings: Settings, *, secrets: bool) -> ProfilesFile:
    return ProfilesFile(
        settings.profiles_file,
        os.environ,
        secrets=secrets,
        check_every_seconds=settings.profiles_check_seconds,
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


_current_producer: tuple[int, Producer] | None = None


def get_producer() -> Producer:
    """This process's producer: its worker runtime if it has one, else one without secrets."""
    global _current_producer
    with _lock:
        if _current is not None and _current[0] == os.getpid():
            return _current[1]
        if _current_producer is None or _current_producer[0] != os.getpid():
            _current_producer = (os.getpid(), build_producer())
        return _current_producer[1]


def reset_runtime() -> None:
    """Drop this process's runtime (tests, and worker shutdown)."""
    global _current, _current_producer
    with _lock:
        for held in (_current, _current_producer):
            if held is not None and held[0] == os.getpid():
                held[1].close()
        _current = _current_producer = None
