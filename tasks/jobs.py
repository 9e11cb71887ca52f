"""Celery tasks that move jobs: send one, and re-publish the ones the broker may have lost."""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime, timedelta

from celery import Task

from worker import redis_keys
from worker.celery import REQUEUE_TASK, SEND_TASK, app
from worker.delivery import deliver
from worker.intake import publish
from worker.redis_adapter import Lock
from worker.runtime import Runtime, get_runtime

log = logging.getLogger(__name__)


@app.task(name=SEND_TASK, bind=True, max_retries=None)
def send_notification(self: Task, job_id: str) -> None:
    """Send job ``job_id``; its arguments are the id only, never content or secrets."""
    rt = get_runtime()
    decision = deliver(job_id, rt, worker=f"{self.request.hostname}/{os.getpid()}")
    if decision.action == "retry":
        eta = datetime.now(UTC) + timedelta(seconds=decision.countdown_seconds)
        rt.store.mark_published([job_id], at=eta)
        raise self.retry(countdown=decision.countdown_seconds)


@app.task(name=REQUEUE_TASK)
def requeue_stale_jobs() -> int:
    """Publish jobs that are due but have no live task message (beat, every minute).

    Covers delays kept in the database and a broker that lost its data. A
    duplicate message is harmless: the job claim lets only one through.
    """
    rt = get_runtime()
    with beat_lock(rt, "requeue") as held:
        if not held:
            return 0
        grace = timedelta(seconds=rt.settings.requeue_grace_seconds)
        stale = rt.store.stale_jobs(grace=grace)
        published = sum(publish(rt, job_id, priority) for job_id, priority in stale)
    if stale:
        log.info("requeued %d of %d stale jobs", published, len(stale))
    return published


def beat_lock(rt: Runtime, task: str) -> Lock:
    """Held while a periodic task runs, so two beats started by mistake do not double the work.

    ``with beat_lock(rt, name) as held:`` — ``held`` is False when another run
    holds it; its TTL frees it before the next run if that run died.
    """
    return Lock(rt.redis, redis_keys.beat_lock(task), rt.settings.beat_lock_seconds)
