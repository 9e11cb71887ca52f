"""Celery tasks and the producer API.

Incident systems call ``tasks.notify(...)``; workers run the tasks in
``tasks.jobs`` and ``tasks.tokens``.
"""

from worker.intake import notify

__all__ = ["notify"]
