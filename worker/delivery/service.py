"""The steps of delivering a claimed job: limit → send → mark → record (``delivery.batch``
runs them for one job or many).

Each ends in a Decision that the task turns into "done", a retry with a
countdown, or nothing (the job waits in the database and the sweep publishes
it when due). ``decide`` is the one place that decides what an outcome means
for the job (see its docstring).
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

import redis

from worker.credentials import Profile, Profiles
from worker.delivery import sent_marks
from worker.delivery.decide import Decision, record
from worker.delivery.leases import Leases
from worker.delivery.rate_limit import RateLimiter
from worker.errors import MailpipeError
from worker.metrics import Metrics
from worker.settings import Settings
from worker.store import Job, Store
from worker.transport import OutgoingMessage, Phase, SendResult, Transport, outcome
from worker.transport.sender import as_sent_by

log = logging.getLogger(__name__)


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
    @property
    def leases(self) -> Leases: ...
    @property
    def redis(self) -> redis.Redis: ...


def before_send(
    rt: DeliveryContext, job: Job, worker: str, now: Callable[[], datetime]
) -> Decision | None:
    """What ends a claimed job's turn before it is sent (already recorded), or None: send it.

    An earlier send accepted but not recorded is recorded now; a job out of
    sends fails; a rate limit puts it back in line (a limit is taken here).
    """
    settings = rt.settings
    unrecorded = range(job.attempt_count + 1, job.sends)  # earlier sends with no attempt row
    accepted = sent_marks.find(rt.redis, job.id, unrecorded)
    if accepted is not None:
        log.warning("job %s: an earlier send was accepted but not recorded; recording it", job.id)
        return record(rt, job, SendResult(accepted), worker, now(), now)
    # An operator's retry of a failed job starts a new budget (Job.retried_after).
    if job.sends - (job.retried_after or 0) > settings.retry_max_attempts:
        text = f"sent {job.sends - 1} times without a recorded outcome; giving up"
        return record(rt, job, _failed("connect", MailpipeError(text)), worker, now(), now)
    try:
        profile = rt.profiles.get(sending_profile(job))
    except MailpipeError as exc:
        return record(rt, job, _failed("connect", exc), worker, now(), now)
    wait = _take_limits(rt, job, profile)
    if wait == float("inf"):
        text = f"the message has more recipients than profile {profile.name} may send to a day"
        return record(rt, job, _failed("connect", MailpipeError(text)), worker, now(), now)
    if wait > 0:
        return _back_in_line(rt, job, wait, now, reason=f"rate limit of profile {profile.name}")
    return None


def busy(
    rt: DeliveryContext, job: Job, result: SendResult, now: Callable[[], datetime]
) -> Decision:
    """Like a rate limit: the mailbox is busy, the job did not get a try."""
    wait = rt.settings.smtp_slot_wait_seconds
    return _back_in_line(rt, job, wait, now, reason=result.outcome.text)


def mark_if_accepted(rt: DeliveryContext, job: Job, result: SendResult) -> bool:
    """False when the server accepted it but the mark could not be written."""
    if not any(r.accepted for r in result.outcome.recipients):
        return True
    return sent_marks.mark(
        rt.redis, job.id, job.sends, result.outcome, rt.settings.sent_mark_seconds
    )


def _take_limits(rt: DeliveryContext, job: Job, profile: Profile) -> float:
    try:
        share = 1.0 if job.priority == "high" else rt.settings.rate_share_normal
        return rt.limiter.take(profile, len(envelope(job)), share=share)
    except MailpipeError as exc:  # Redis unreachable: not the job's fault, try again soon
        log.warning("job %s: %s", job.id, exc)
        return rt.settings.retry_base_seconds


def _back_in_line(
    rt: DeliveryContext, job: Job, wait: float, now: Callable[[], datetime], *, reason: str
) -> Decision:
    """Not an attempt and not a send: the job just goes back in line."""
    assert job.claim_id is not None
    rt.store.reschedule(job.id, job.claim_id, now() + timedelta(seconds=wait))
    return Decision.later(rt.settings, wait, reason=reason)


def envelope(job: Job) -> tuple[str, ...]:
    """The recipients this send goes to: all, or those a partial delivery left."""
    return tuple(job.pending if job.pending is not None else job.recipients)


def sending_profile(job: Job) -> str:
    """The profile this send goes through: the job's own, or the fallback it moved to."""
    return job.via_profile or job.profile


def outgoing(job: Job, profiles: Profiles) -> OutgoingMessage:
    """The job's message; through a fallback, with that profile's sender (``as_sent_by``)."""
    message = OutgoingMessage(
        sender=job.sender,
        recipients=envelope(job),
        data=job.message,
        message_id=job.message_id,
        smtputf8=job.smtputf8,
        envid=job.id,
    )
    return as_sent_by(message, profiles.get(job.via_profile)) if job.via_profile else message


def attempt_send(job_id: str, send: Callable[[], SendResult]) -> tuple[SendResult, bool]:
    """``send()``'s result, or what it raised as an outcome (then True)."""
    started = time.monotonic()
    try:
        return send(), False
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
        log.error("job %s: unexpected %s while sending at %s", job_id, type(exc).__name__, where)
        unexpected = MailpipeError(f"unexpected {type(exc).__name__}", kind="transient")
        return _failed("connect", unexpected, seconds=time.monotonic() - started), True
    return _failed("token", error, seconds=time.monotonic() - started), True


def _failed(phase: Phase, error: MailpipeError, *, seconds: float | None = None) -> SendResult:
    """A send that ended in one of our errors before any server reply."""
    return SendResult(outcome(phase, error), token_seconds=seconds)
