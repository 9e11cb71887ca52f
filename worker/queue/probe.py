"""Asking the broker how many task messages wait on a queue."""

from __future__ import annotations

from celery import Celery

from worker.queue.broker_adapter import BrokerUnavailableError, QueueNotFoundError, broker_errors


def waiting_messages(celery: Celery, queue: str) -> int | None:
    """Task messages waiting on ``queue`` now; None when the broker cannot say."""
    try:
        with broker_errors(f"the depth of {queue}"), celery.connection_for_read() as connection:
            declared = connection.default_channel.queue_declare(queue=queue, passive=True)
            return int(declared.message_count)
    except QueueNotFoundError:  # nobody has declared it yet: nothing waits on it
        return 0
    except BrokerUnavailableError:
        return None
