"""The queue: task names, the Celery app, publishing, the broker probe and errors, the producer.

Everything a producer needs to put a job in, and nothing a worker runs to
send it: ``import tasks`` and ``tasks.notify(...)`` import no transport, no
SMTP pool and no token endpoint (an import-linter contract keeps it so).
The names below are imported on first use (PEP 562): the task names alone
do not import the store.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from providers.lazy import lazy_names

if TYPE_CHECKING:
    from worker.queue.broker_adapter import (
        BrokerUnavailableError,
        QueueNotFoundError,
        broker_errors,
    )
    from worker.queue.celery_app import app, celery_config, producer_app
    from worker.queue.names import (
        BATCH_TASK,
        BOUNCES_TASK,
        CALLBACK_TASK,
        CHECK_TASK,
        CRITICAL_QUEUE,
        EXCHANGE,
        QUEUE,
        REFRESH_TASK,
        REQUEUE_TASK,
        SEND_TASK,
        queue_of,
    )
    from worker.queue.probe import waiting_messages
    from worker.queue.producer import (
        Producer,
        build_producer,
        get_producer,
        profiles_file,
        reset_producer,
        use_as_producer,
    )
    from worker.queue.publishing import publish, publish_batch, publish_callbacks

_NAMES = "worker.queue.names"
_BROKER_ADAPTER = "worker.queue.broker_adapter"
# Each public name and the module that defines it.
_HOMES = {
    "BrokerUnavailableError": _BROKER_ADAPTER,
    "QueueNotFoundError": _BROKER_ADAPTER,
    "broker_errors": _BROKER_ADAPTER,
    "app": "worker.queue.celery_app",
    "celery_config": "worker.queue.celery_app",
    "producer_app": "worker.queue.celery_app",
    "BATCH_TASK": _NAMES,
    "BOUNCES_TASK": _NAMES,
    "CALLBACK_TASK": _NAMES,
    "CHECK_TASK": _NAMES,
    "CRITICAL_QUEUE": _NAMES,
    "EXCHANGE": _NAMES,
    "QUEUE": _NAMES,
    "REFRESH_TASK": _NAMES,
    "REQUEUE_TASK": _NAMES,
    "SEND_TASK": _NAMES,
    "queue_of": _NAMES,
    "waiting_messages": "worker.queue.probe",
    "Producer": "worker.queue.producer",
    "build_producer": "worker.queue.producer",
    "get_producer": "worker.queue.producer",
    "profiles_file": "worker.queue.producer",
    "reset_producer": "worker.queue.producer",
    "use_as_producer": "worker.queue.producer",
    "publish": "worker.queue.publishing",
    "publish_batch": "worker.queue.publishing",
    "publish_callbacks": "worker.queue.publishing",
}

__all__ = [
    "BATCH_TASK",
    "BOUNCES_TASK",
    "CALLBACK_TASK",
    "CHECK_TASK",
    "CRITICAL_QUEUE",
    "EXCHANGE",
    "QUEUE",
    "REFRESH_TASK",
    "REQUEUE_TASK",
    "SEND_TASK",
    "BrokerUnavailableError",
    "Producer",
    "QueueNotFoundError",
    "app",
    "broker_errors",
    "build_producer",
    "celery_config",
    "get_producer",
    "producer_app",
    "profiles_file",
    "publish",
    "publish_batch",
    "publish_callbacks",
    "queue_of",
    "reset_producer",
    "use_as_producer",
    "waiting_messages",
]

__getattr__, __dir__ = lazy_names(__name__, _HOMES)
