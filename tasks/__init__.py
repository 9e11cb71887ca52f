"""Celery tasks and the producer API.

Incident systems call ``tasks.notify(...)``; workers run the tasks in
``tasks.delivery`` and ``tasks.tokens``.
"""

from worker.producer import notify

__all__ = ["notify"]
