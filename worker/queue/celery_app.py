"""The Celery application, shared by producers and workers (``worker.celery`` re-exports it).

JSON only; late acks with redelivery when a worker dies (at-least-once; the
job claim in the database makes a second delivery a no-op); one message
prefetched at a time; a visibility timeout longer than every countdown and
time limit (``Settings`` refuses any other combination). Task modules are
named as strings, imported by a worker only, and producers publish by task
name, so nothing in ``worker/`` imports ``tasks/`` (docs/architecture.md),
and a producer imports neither the tasks nor what they run.
"""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

from celery import Celery
from kombu.entity import Queue

from worker.errors import ConfigError
from worker.queue.names import (
    BOUNCES_TASK,
    CRITICAL_QUEUE,
    EXCHANGE,
    QUEUE,
    REFRESH_TASK,
    REQUEUE_TASK,
)
from worker.settings import DEFAULTS, Settings, get_settings


def celery_config(settings: Settings) -> dict[str, Any]:
    transport = {
        "visibility_timeout": settings.visibility_timeout_seconds,
        # Redis: BRPOP mail.critical before mail, always. kombu's default, round
        # robin, would take a bulk message between two pages.
        "queue_order_strategy": "priority",
    }
    refresh = settings.beat_interval_seconds
    sweep = settings.sweep_interval_seconds
    bounces = settings.bounce_poll_seconds
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
        # Off: a send in flight when the broker blips is finished, not cut off
        # mid-DATA (which made duplicates). Its message comes back after the
        # visibility timeout, and the job's claim (delivered, or held under a
        # live lease) lets it through to nobody.
        "worker_cancel_long_running_tasks_on_connection_loss": False,
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
        # before the next one is dropped: the next one does the same work.
        "beat_schedule": {
            "refresh-expiring-tokens": {
                "task": REFRESH_TASK,
                "schedule": timedelta(seconds=refresh),
                "options": {
                    "queue": CRITICAL_QUEUE,
                    "expires": Settings.beat_expires_seconds(refresh),
                },
            },
            "read-bounces": {
                "task": BOUNCES_TASK,
                "schedule": timedelta(seconds=bounces),
                "options": {"expires": Settings.beat_expires_seconds(bounces)},
            },
            # Often: a job whose worker died is sent again within a lease and a sweep.
            "requeue-stale-jobs": {
                "task": REQUEUE_TASK,
                "schedule": timedelta(seconds=sweep),
                "options": {
                    "queue": CRITICAL_QUEUE,
                    "expires": Settings.beat_expires_seconds(sweep),
                },
            },
        },
    }


def producer_app(settings: Settings) -> Celery:
    """A Celery app that publishes to ``settings``' broker (for a runtime with its own settings).

    Producers publish by task name, so this app registers no tasks and does
    not become the process's current app.
    """
    producer = Celery("mailpipe-producer", set_as_current=False)
    producer.conf.update(celery_config(settings))
    return producer


def _settings_or_exit() -> Settings:
    """This process's settings; under ``celery -A worker …`` a bad one is a line, not a traceback.

    Imported by anything else (the CLI, an incident system calling notify),
    the app takes the defaults, and the ConfigError reaches whoever asks for
    the settings, which says it its own way.
    """
    try:
        return get_settings()
    except ConfigError as exc:
        if Path(sys.argv[0]).name != "celery" and Path(sys.argv[0]).parent.name != "celery":
            # Whoever needs the settings asks get_settings(), which says it again.
            return DEFAULTS
        for line in str(exc).splitlines():
            print(f"mailpipe: error: {line}", file=sys.stderr)
        raise SystemExit(1) from None


app = Celery(
    "mailpipe",
    include=[
        "tasks.jobs",
        "tasks.tokens",
        "tasks.callbacks",
        "tasks.bounces",
        "tasks.checks",
        "tasks.lifecycle",
    ],
)
app.conf.update(celery_config(_settings_or_exit()))
