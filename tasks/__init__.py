"""Celery tasks and the producer API.

Incident systems call ``tasks.notify(...)`` (or ``tasks.notify_many(...)`` to fan out);
workers run the tasks in ``tasks.jobs``, ``tasks.tokens`` and their neighbours, which
Celery imports by name. Importing this package imports none of them, nor any transport:
a producer loads the message checks, the queue and the store only
(tests/tasks/test_producer_imports.py).
"""

from worker.intake import notify, notify_many

__all__ = ["notify", "notify_many"]
