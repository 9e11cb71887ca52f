"""Deliver one job: claim → limit → send → record (the ``mailpipe.send_notification`` task).

Testable without Celery: it returns a Decision that the task turns into
"done", a retry with a countdown, or nothing (the job waits in the database
and ``requeue_stale_jobs`` publishes it when due). This is the one place that
decides what an outcome means for the job: delivered → done; permanent →
failed, never retried; transient and auth rejected (the transport already
tried one fresh token) → retry with backoff until the attempts run out.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal, Protocol

from providers.backoff import full_jitter
from worker.credentials import Profiles
from worker.delivery.rate_limit import RateLimiter
from worker.errors import MailpipeError
from worker.metrics import Metrics, Samples
from worker.settings import Settings
from worker.store import AttemptRecord, Job, Store, utcnow
from worker.transport import OutgoingMessage, Phase, SendResult, Transport, outcome

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Decision:
    """What the task should do next."""

    action: Literal["done", "skip", "retry", "wait"]
    countdown_seconds: float = 0.0
    reason: str = ""


class DeliveryContext(Protocol):
    """What delivering a job needs; a worker's ``Runtime`` is one."""

    @property
    def settings(self) -> Settings: ...
    @property
    def profiles(self) -> Profiles: ...
    @property
    def store(self) -> Store: ...
    @property
    def limiter(self) -> RateLimiter: ...
    @property
    def transport(self) -> Transport: ...
    @property
    def metrics(self) -> Metrics: ...


def deliver(
    job_id: str,
    rt: DeliveryContext,
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
        return _record(rt, job, _failed("connect", exc), worker, now(), now)
    try:
        wait = rt.limiter.take(profile, len(job.recipients))
    except MailpipeError as exc:  # Redis unreachable: not the job's fault, try again soon
        log.warning("job %s: %s", job_id, exc)
        wait = settings.retry_base_seconds
    if wait == float("inf"):
        text = f"the message has more recipients than profile {profile.name} may send to a day"
        return _record(rt, job, _failed("connect", MailpipeError(text)), worker, now(), now)
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


def _send(rt: DeliveryContext, job: Job) -> SendResult:
    message = OutgoingMessage(
        sender=job.sender,
        recipients=tuple(job.recipients),
        data=job.message,
        message_id=job.message_id,
        smtputf8=job.smtputf8,
    )
    started = time.monotonic()
    try:
        return rt.transport.send(job.profile, message)
    except MailpipeError as exc:  # credentials, or the token cache unreachable
        error = exc
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
        unexpected = MailpipeError(f"unexpected {type(exc).__name__}", kind="transient")
        return _failed("connect", unexpected, seconds=time.monotonic() - started)
    return _failed("token", error, seconds=time.monotonic() - started)


def _record(
    rt: DeliveryContext,
    job: Job,
    delivery: SendResult,
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
        delay = full_jitter(
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
    rt.metrics.record(_samples(job, record, status))
    if status == "queued":
        # A planned retry is not an error.
        log.info("job %s attempt %d: %s; retry in %.0fs", job.id, attempt, result.summary(), delay)
        return _later(rt, delay, reason=result.summary())
    level = logging.INFO if status == "delivered" else logging.WARNING
    log.log(level, "job %s attempt %d: %s", job.id, attempt, result.summary())
    return Decision("done", reason=result.summary())


def _samples(job: Job, record: AttemptRecord, status: str) -> Samples:
    profile = {"profile": job.profile}
    samples = Samples().count("attempts", {**profile, "outcome": record.outcome.kind})
    seconds = (record.ended_at - record.started_at).total_seconds()
    samples.observe("send_duration_seconds", profile, seconds)
    if status == "delivered":
        samples.count("jobs_delivered", profile)
        waited = (record.ended_at - job.created_at).total_seconds()
        samples.observe("enqueue_to_accepted_seconds", profile, waited)
    elif status == "failed":
        samples.count("jobs_failed", profile)
    return samples


def _later(rt: DeliveryContext, delay: float, *, reason: str) -> Decision:
    if delay <= rt.settings.broker_max_countdown_seconds:
        return Decision("retry", countdown_seconds=delay, reason=reason)
    # Longer than the broker should hold a message: wait in the database.
    return Decision("wait", countdown_seconds=delay, reason=reason)


def _failed(phase: Phase, error: MailpipeError, *, seconds: float | None = None) -> SendResult:
    """A send that ended in one of our errors before any server reply."""
    return SendResult(outcome(phase, error), token_seconds=seconds)
