"""Asking the broker how many task messages wait on a queue."""

from __future__ import annotations

from celery import Celery


def waiting_messages(celery: Celery, queue: str) -> int | None:
    """Task messages waiting on ``queue`` now; None when the broker cannot say."""
    try:
        with celery.connection_for_read() as connection:
            declared = connection.default_channel.queue_declare(queue=queue, passive=True)
            return int(declared.message_count)
    except Exception as exc:  # any transport's error; a queue nobody declared yet is empty
        if "NOT_FOUND" in str(exc) or "no queue" in str(exc).lower():
            return 0
        return None
