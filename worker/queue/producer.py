"""The producer: what putting jobs in needs, and no more (no transport, no token endpoint).

An incident system that calls ``tasks.notify`` imports this, not the worker:
its process holds sender profiles (without secrets), the store and a broker
connection, never an SMTP pool, a Graph client or a provider's token code.
A worker process uses its runtime (``worker.runtime``) as its producer.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

import redis
from celery import Celery

from worker.credentials.profiles import Profiles
from worker.credentials.profiles_source import ProfilesFile
from worker.metrics import Metrics
from worker.queue.celery_app import app, producer_app
from worker.settings import Settings, get_settings
from worker.store.jobs import Store


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
        profiles_file=profiles_file(settings, secrets=False),
        redis=client,
        store=Store(settings.database_url.get_secret_value()),
        metrics=Metrics(client),
        celery=celery,
    )


def profiles_file(settings: Settings, *, secrets: bool) -> ProfilesFile:
    """The profiles file of ``settings``; ``secrets``: read each profile's secrets too."""
    return ProfilesFile(
        settings.profiles_file,
        os.environ,
        secrets=secrets,
        check_every_seconds=settings.profiles_check_seconds,
    )


_lock = threading.Lock()
# (pid, producer): a producer built before a fork is not used after it.
_current: tuple[int, Producer] | None = None
_worker: tuple[int, Producer] | None = None


def get_producer() -> Producer:
    """This process's producer: its worker runtime if it has one, else one without secrets."""
    global _current
    with _lock:
        if _worker is not None and _worker[0] == os.getpid():
            return _worker[1]
        if _current is None or _current[0] != os.getpid():
            _current = (os.getpid(), build_producer())
        return _current[1]


def use_as_producer(producer: Producer | None) -> None:
    """Make ``producer`` (a worker's runtime) this process's producer; None forgets it."""
    global _worker
    with _lock:
        _worker = None if producer is None else (os.getpid(), producer)


def reset_producer() -> None:
    """Close and drop this process's own producer (tests, and worker shutdown)."""
    global _current, _worker
    with _lock:
        if _current is not None and _current[0] == os.getpid():
            _current[1].close()
        _current = _worker = None
