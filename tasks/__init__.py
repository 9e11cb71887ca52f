"""Celery tasks and the producer API.

Incident systems call ``tasks.notify(...)`` (or ``tasks.notify_many(...)`` to fan out);
workers run the tasks in
``tasks.jobs`` and ``tasks.tokens``.
"""

from worker.intake import notify, notify_many

__all__ = ["notify", "notify_many"]
