"""Where Celery's ``-A worker`` finds the application: ``celery -A worker worker|beat|flower``.

The app, its settings and the task names live in ``worker.queue`` (a
producer needs them and nothing a worker runs); import them from there.
"""

from worker.queue.celery_app import app

__all__ = ["app"]
