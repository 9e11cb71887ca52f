"""The Celery application: ``celery -A worker worker|beat|flower``.

The app, its settings and the task names live in ``worker.queue`` (a
producer needs them and nothing a worker runs); this module is where
Celery's ``-A worker`` finds the app, and keeps the names importable here.
"""

from worker.queue.app import app, celery_config, producer_app
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
    "app",
    "celery_config",
    "producer_app",
    "queue_of",
    "waiting_messages",
]
