"""The Celery application: ``celery -A worker worker|beat|flower``.

Settings follow the project's FACTS notes (section D): JSON only; late acks
with redelivery when a worker dies (at-least-once; the job claim in the
database makes a second delivery a no-op); one message prefetched at a time;
a visibility timeout longer than every countdown and time limit. Task modules
are named as strings and producers publish by task name, so nothing in
``worker/`` imports ``tasks/``.
"""

from __future__ import annotations

import sys
from datetime import timedelta
from typing import Any

from celery import Celery
from celery.signals import worker_init, worker_process_shutdown
from kombu.entity import Exchange, Queue

from worker.errors import MailpipeError
from worker.settings import Settings, get_settings

SEND_TASK = "mailpipe.send_notification"
REFRESH_TASK = "mailpipe.refresh_expiring_tokens"
REQUEUE_TASK = "mailpipe.requeue_stale_jobs"
QUEUE = "mail"
CRITICAL_QUEUE = "mail.critical"  # incident pages never wait behind a bulk digest
EXCHANGE = Exchange("mailpipe", type="direct")


def celery_config(settings: Settings) -> dict[str, Any]:
    assert settings.broker_max_countdown_seconds < settings.visibility_timeout_seconds
    assert settings.task_time_limit_seconds < settings.visibility_timeout_seconds
    # A claim must outlive the task that holds it, or a second worker could
    # take over a job that is still being sent.
    assert settings.task_time_limit_seconds < settings.send_lease_seconds
    transport = {"visibility_timeout": settings.visibility_timeout_seconds}
    return {
        "broker_url": settings.broker_url.get_secret_value(),
        "broker_transport_options": transport,
        "broker_connection_retry_on_startup": True,
        "task_serializer": "json",
        "accept_content": ["json"],
        "result_serializer": "json",
        "task_ignore_result": True,  # outcomes live in the database
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        "worker_soft_shutdown_timeout": 10.0,
        "task_time_limit": settings.task_time_limit_seconds,
        "task_soft_time_limit": settings.task_soft_time_limit_seconds,
        # No task events unless someone watches: Flower turns them on in every
        # worker while it runs (its enable_events option, on by default), and
        # publishing three events per task was a third of the worker's own CPU.
        "task_default_queue": QUEUE,
        "task_default_exchange": EXCHANGE.name,
        "task_default_routing_key": QUEUE,
        # One routing key per queue: were both bound to one key, RabbitMQ would
        # copy every message into both queues.
        "task_queues": [
            Queue(CRITICAL_QUEUE, EXCHANGE, routing_key=CRITICAL_QUEUE),
            Queue(QUEUE, EXCHANGE, routing_key=QUEUE),
        ],
        # Beat's tasks skip the bulk queue, and a run that could not start
        # within the minute is dropped: the next one does the same work.
        "beat_schedule": {
            "refresh-expiring-tokens": {
                "task": REFRESH_TASK,
                "schedule": timedelta(minutes=1),
                "options": {"queue": CRITICAL_QUEUE, "expires": 55},
            },
            "requeue-stale-jobs": {
                "task": REQUEUE_TASK,
                "schedule": timedelta(minutes=1),
                "options": {"queue": CRITICAL_QUEUE, "expires": 55},
            },
        },
    }


app = Celery("mailpipe", include=["tasks.delivery", "tasks.tokens"])
app.conf.update(celery_config(get_settings()))


def publish_to(broker_url: str) -> None:
    """Make this process's producers publish to ``broker_url`` (tests and the benchmark).

    ``app.close()`` is not enough: Celery keeps its producer pool bound to the
    old broker (it resets both only after a fork, in ``_after_fork``).
    """
    app.conf.broker_url = broker_url
    app._pool = None
    app.amqp._producer_pool = None


@worker_init.connect
def _refuse_an_old_schema(**_: Any) -> None:
    """A worker on an out-of-date schema would fail every job: refuse to start instead."""
    from worker.store import Store

    store = Store(get_settings().database_url.get_secret_value())
    try:
        store.check_schema()
    except MailpipeError as exc:
        print(f"mailpipe: error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    finally:
        store.engine.dispose()  # no pooled connection may cross the fork into the pool


@worker_process_shutdown.connect
def _close_connections(**_: Any) -> None:
    from worker.runtime import reset_runtime

    reset_runtime()
