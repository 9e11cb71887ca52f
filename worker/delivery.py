"""Deliver one job: the service behind the ``mailpipe.send_notification`` task.

Testable without Celery: it returns a Decision that the task turns into
"done", a retry with a countdown, or nothing (the job waits in the database
and ``requeue_stale_jobs`` publishes it when due). Retry policy lives here and
only here: delivered → done; permanent → failed, never retried; transient and
auth rejected (the pool already tried one fresh token) → retry with backoff
until the attempts run out.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

from providers import ProviderError
from worker.backoff import retry_delay
from worker.errors import MailpipeError
from worker.message import OutgoingMessage
from worker.runtime import Runtime
from worker.schema import Job
from worker.smtp_outcomes import Outcome, OutcomeKind
from worker.smtp_pool import Delivery
from worker.store import AttemptRecord, utcnow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Decision:
    """What the task should do next."""

    action: Literal["done", "skip", "retry", "wait"]
    countdown_seconds: float = 0.0
    reason: str = ""


def deliver(
    job_id: str,
    rt: Runtime,
    *,
    worker: str,
    now: Callable[[], datetime] = utcnow,
) -> Decision:
    settings = rt.settings
    job = rt.store.claim(job_id, worker, timedelta(seconds=settings.send_lease_seconds))
    if job is None:
        return Decision("skip", reason="delivered, failed, not due, or being sent elsewhere")
    try:
        profile = rt.profiles.get(job.profile)
    except MailpipeError as exc:
        return _record(rt, job, _failure("permanent", str(exc)), worker, now(), now)
    try:
        wait = rt.limiter.take(profile, len(job.recipients))
    except MailpipeError as exc:  # Redis unreachable: not the job's fault, try again soon
        log.warning("job %s: %s", job_id, exc)
        wait = settings.retry_base_seconds
    if wait == float("inf"):
        text = f"the message has more recipients than profile {profile.name} may send to a day"
        return _record(rt, job, _failure("permanent", text), worker, now(), now)
    if wait > 0:
        # Not an attempt: the job just goes back in line.
        rt.store.reschedule(job_id, worker, now() + timedelta(seconds=wait))
        return _later(rt, wait, reason=f"rate limit of profile {profile.name}")
    started = now()
    delivery = _send(rt, job)
    if delivery.busy:
        # Like a rate limit: the mailbox is busy, the job did not get a try.
        wait = rt.settings.smtp_slot_wait_seconds
        rt.store.reschedule(job_id, worker, now() + timedelta(seconds=wait))
        return _later(rt, wait, reason=delivery.outcome.text)
    return _record(rt, job, delivery, worker, started, now)


def _send(rt: Runtime, job: Job) -> Delivery:
    message = OutgoingMessage(
        sender=job.sender,
        recipients=tuple(job.recipients),
        data=job.message,
        message_id=job.message_id,
        smtputf8=job.smtputf8,
    )
    started = time.monotonic()
    try:
        return rt.pool.send(job.profile, message)
    except ProviderError as exc:
        kind: OutcomeKind = "transient" if exc.transient else "permanent"
        result = Outcome(
            kind=kind,
            phase="token",
            text=exc.message,
            hint=exc.hint,
            retry_after_seconds=exc.retry_after_seconds,
        )
    except MailpipeError as exc:  # token cache or store unreachable
        kind = "transient" if exc.transient else "permanent"
        result = Outcome(kind=kind, phase="token", text=str(exc))
    except Exception as exc:
        # Anything else (a time limit, a bug) still counts as an attempt, so the
        # job runs out of attempts instead of coming back forever. The type
        # only: an exception's text could hold what it was handling.
        # Where it broke (file, line, function), never what it held.
        where = " < ".join(
            f"{Path(f.filename).name}:{f.lineno} {f.name}"
            for f in reversed(traceback.extract_tb(exc.__traceback__))
        )
        log.error("job %s: unexpected %s while sending at %s", job.id, type(exc).__name__, where)
        result = Outcome(kind="transient", phase="connect", text=f"unexpected {type(exc).__name__}")
    return Delivery(result, reused_connection=False, token_seconds=time.monotonic() - started)


def _record(
    rt: Runtime,
    job: Job,
    delivery: Delivery,
    worker: str,
    started: datetime,
    now: Callable[[], datetime],
) -> Decision:
    settings = rt.settings
    result = delivery.outcome
    attempt = job.attempt_count + 1
    next_attempt_at = None
    delay = 0.0
    if result.kind == "delivered":
        status = "delivered"
    elif result.kind == "permanent" or attempt >= settings.retry_max_attempts:
        status = "failed"
    else:
        status = "queued"
        delay = retry_delay(
            attempt,
            base_seconds=settings.retry_base_seconds,
            max_seconds=settings.retry_max_seconds,
        )
        # A token endpoint's Retry-After (e.g. Microsoft's 429, 60 s) is a floor.
        delay = max(delay, result.retry_after_seconds or 0.0)
        next_attempt_at = now() + timedelta(seconds=delay)
    record = AttemptRecord(
        profile=job.profile,
        started_at=started,
        ended_at=now(),
        worker=worker,
        outcome=result,
        token_source=delivery.token_source,
        token_seconds=delivery.token_seconds,
        reused_connection=delivery.reused_connection,
    )
    rt.store.record_attempt(
        job.id, record, number=attempt, status=status, next_attempt_at=next_attempt_at
    )
    if status == "queued":
        # A planned retry is not an error.
        log.info("job %s attempt %d: %s; retry in %.0fs", job.id, attempt, result.summary(), delay)
        return _later(rt, delay, reason=result.summary())
    level = logging.INFO if status == "delivered" else logging.WARNING
    log.log(level, "job %s attempt %d: %s", job.id, attempt, result.summary())
    return Decision("done", reason=result.summary())


def _later(rt: Runtime, delay: float, *, reason: str) -> Decision:
    if delay <= rt.settings.broker_max_countdown_seconds:
        return Decision("retry", countdown_seconds=delay, reason=reason)
    # Longer than the broker should hold a message: wait in the database.
    return Decision("wait", countdown_seconds=delay, reason=reason)


def _failure(kind: Literal["permanent", "transient"], text: str) -> Delivery:
    return Delivery(Outcome(kind=kind, phase="connect", text=text), reused_connection=False)
