"""Celery tasks that move jobs: send one, and re-publish the ones the broker may have lost."""

from __future__ import annotations

import logging
import os
import time
from datetime import timedelta

from celery import Task
from celery.exceptions import SoftTimeLimitExceeded

from worker import redis_keys
from worker.delivery import deliver_batch, deliver_with_queued
from worker.queue.celery_app import app
from worker.queue.names import BATCH_TASK, CRITICAL_QUEUE, REQUEUE_TASK, SEND_TASK, queue_of
from worker.queue.probe import waiting_messages
from worker.queue.publishing import publish, publish_batch, publish_callbacks
from worker.redis_adapter import Lock
from worker.runtime import Runtime, get_runtime
from worker.settings import Settings
from worker.store import utcnow

log = logging.getLogger(__name__)

# Jobs claimed, sent and recorded together: a crash leaves at most this many
# to the sweep, and a page waits for at most this many sends.
CLAIM_WINDOW = 25


@app.task(name=SEND_TASK, bind=True, max_retries=None)
def send_notification(self: Task, job_id: str) -> None:
    """Send job ``job_id``; its arguments are the id only, never content or secrets.

    Other due jobs of its profile and priority that wait in the queue go
    with it (up to ``CLAIM_WINDOW``), over the same connection: under a
    backlog their own messages then find nothing to do. A job that needs a
    retry goes back as a task message of its own, with its countdown.
    """
    rt = _runtime(self)
    worker = f"{self.request.hostname}/{os.getpid()}"
    for job, decision in deliver_with_queued(job_id, rt, worker=worker, limit=CLAIM_WINDOW):
        publish_callbacks(rt, decision.callbacks)
        if decision.action == "retry":
            publish(rt, job.id, job.priority, decision.countdown_seconds)


# How often a batch looks for a waiting page: a page waits this long at most, plus one window.
PAGE_CHECK_SECONDS = 0.1


@app.task(name=BATCH_TASK, bind=True)
def send_batch(self: Task, job_ids: list[str], priority: str) -> None:
    """Send several jobs of one profile over the pooled connection, a window at a time.

    Each job is claimed, limited, sent and recorded as by ``send_notification``
    (``worker.delivery.batch``); one that needs a retry goes back as a task of
    its own with its own countdown. The rest of a batch goes on in a new batch
    message when a page waits (so the page is sent next, not after the whole
    batch) or past half the soft time limit (so a slow server cannot make the
    batch hit it).
    """
    rt = _runtime(self)
    worker = f"{self.request.hostname}/{os.getpid()}"
    hand_over_at = time.monotonic() + rt.settings.task_soft_time_limit_seconds / 2
    look_for_pages_at = time.monotonic() + PAGE_CHECK_SECONDS
    for start in range(0, len(job_ids), CLAIM_WINDOW):
        now = time.monotonic()
        page_waits = False
        if start and now >= look_for_pages_at:  # asking the broker costs a connection
            look_for_pages_at = now + PAGE_CHECK_SECONDS
            page_waits = _page_waits(rt, priority)
        if start and (now > hand_over_at or page_waits):
            rest = job_ids[start:]
            if publish_batch(rt, rest, priority):
                rt.store.mark_published(rest, batched=True)
            return
        window = job_ids[start : start + CLAIM_WINDOW]
        for job, decision in deliver_batch(window, rt, worker=worker):
            publish_callbacks(rt, decision.callbacks)
            if decision.action == "retry":
                publish(rt, job.id, priority, decision.countdown_seconds)


def _runtime(task: Task) -> Runtime:
    """The process's runtime, built by its first task. A build the soft time limit cut short
    (a slow start on a busy machine) hands the task back at once: nothing was claimed yet,
    and the job would otherwise wait for the sweep."""
    try:
        return get_runtime()
    except SoftTimeLimitExceeded as exc:
        log.warning("task %s: the worker's start ran past the soft time limit; again", task.name)
        raise task.retry(countdown=0, exc=exc, max_retries=None) from None


def _page_waits(rt: Runtime, priority: str) -> bool:
    """A high-priority message waits on the critical queue (a bulk batch makes way for it)."""
    return priority != "high" and bool(waiting_messages(rt.celery, CRITICAL_QUEUE))


@app.task(name=REQUEUE_TASK)
def requeue_stale_jobs() -> int:
    """Publish the jobs whose task message is missing (beat, every few seconds).

    Jobs waiting in the database until due, jobs whose worker died mid-send
    (lease expired), and jobs the broker lost; never a second message for a
    job whose message is only slow (``worker.store.sweeps``). A duplicate
    would still be harmless: the claim lets one through.
    """
    rt = get_runtime()
    settings = rt.settings
    with beat_lock(rt, "requeue", settings.sweep_interval_seconds) as held:
        if not held:
            return 0
        now = utcnow()
        grace = timedelta(seconds=settings.requeue_grace_seconds)
        stale = rt.store.unpublished_jobs(now, grace=grace)
        waiting = {p: waiting_messages(rt.celery, queue_of(p)) for p in ("high", "normal")}
        if None not in waiting.values():  # the broker can say what it holds
            known = {p: n for p, n in waiting.items() if n is not None}
            stale += rt.store.lost_jobs(now, grace=grace, waiting_by_priority=known)
        published = sum(publish(rt, job_id, priority) for job_id, priority in stale)
        # Callbacks whose task message was lost (a retry's arrives when it is due).
        overdue = rt.store.due_callbacks(now, grace=grace)
        publish_callbacks(rt, overdue)
    if overdue:
        log.info("requeued %d callbacks without a task message", len(overdue))
    if stale:
        log.info("requeued %d of %d jobs without a task message", published, len(stale))
    return published


def beat_lock(rt: Runtime, task: str, interval_seconds: float) -> Lock:
    """Held while a periodic task runs, so two beats started by mistake do not double the work.

    ``with beat_lock(rt, name, interval) as held:`` — ``held`` is False when
    another run holds it; its TTL frees it before the next run if that run died.
    """
    ttl = Settings.beat_lock_seconds(interval_seconds)
    return Lock(rt.redis, redis_keys.beat_lock(task), ttl)
