"""The steps of delivering a claimed job: limit → send → mark → record (``delivery.batch``
runs them for one job or many).

Each ends in a Decision that the task turns into "done", a retry with a
countdown, or nothing (the job waits in the database and the sweep publishes
it when due). These steps do the reading and writing; every verdict they act
on (fail, back in line, retry when, fall back) is ``decide``'s.
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
from worker.delivery.decide import (
    Decision,
    NotNow,
    later,
    not_tried,
    out_of_sends,
    over_limits,
    record,
)
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
) -> Decision | Profile:
    """What ends a claimed job's turn before it is sent (already recorded), or the Profile to
    send it through.

    An earlier send accepted but not recorded is recorded now; a job out of
    sends fails; a rate limit puts it back in line (a limit is taken here).
    This is where a delivery resolves its profile, once: the send gets this
    object (``Transport``), so a reload of the profiles file takes effect at
    the next delivery, never halfway through one.
    """
    unrecorded = range(job.attempt_count + 1, job.sends)  # earlier sends with no attempt row
    accepted = sent_marks.find(rt.redis, job.id, unrecorded)
    if accepted is not None:
        log.warning("job %s: an earlier send was accepted but not recorded; recording it", job.id)
        return record(rt, job, SendResult(accepted), worker, now(), now)
    verdict = out_of_sends(rt.settings, job)
    if verdict is not None:
        return not_now(rt, job, verdict, worker, now)
    try:
        profile = rt.profiles.get(sending_profile(job))
    except MailpipeError as exc:
        return record(rt, job, _failed("connect", exc), worker, now(), now)
    verdict = over_limits(_take_limits(rt, job, profile), profile.name)
    return profile if verdict is None else not_now(rt, job, verdict, worker, now)


def after_send(
    rt: DeliveryContext,
    job: Job,
    sent: SendResult,
    worker: str,
    started: datetime,
    now: Callable[[], datetime],
) -> Decision | None:
    """What ends a sent job's turn before it is judged with the others, or None: judge it.

    A send that never began goes back in line; one the server accepted but
    that could not be marked in Redis is recorded at once (nothing else would
    stop a resend).
    """
    verdict = not_tried(rt.settings, sent)
    if verdict is not None:
        return not_now(rt, job, verdict, worker, now)
    if not _marked(rt, job, sent):
        return record(rt, job, sent, worker, started, now)
    return None


def not_now(
    rt: DeliveryContext, job: Job, verdict: NotNow, worker: str, now: Callable[[], datetime]
) -> Decision:
    """Act on ``decide``'s verdict for a job not sent: record its failure, or put it back in
    line (not an attempt, not a send)."""
    if verdict.wait is None:
        failed = _failed("connect", MailpipeError(verdict.reason, kind="permanent"))
        return record(rt, job, failed, worker, now(), now)
    assert job.claim_id is not None
    rt.store.reschedule(job.id, job.claim_id, now() + timedelta(seconds=verdict.wait))
    return later(rt.settings, verdict.wait, reason=verdict.reason)


def _marked(rt: DeliveryContext, job: Job, result: SendResult) -> bool:
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


def envelope(job: Job) -> tuple[str, ...]:
    """The recipients this send goes to: all, or those a partial delivery left."""
    return tuple(job.pending if job.pending is not None else job.recipients)


def sending_profile(job: Job) -> str:
    """The profile this send goes through: the job's own, or the fallback it moved to."""
    return job.via_profile or job.profile


def outgoing(job: Job, profile: Profile) -> OutgoingMessage:
    """The job's message as ``profile`` (its ``sending_profile``) sends it: through a fallback,
    with that profile's sender (``as_sent_by``)."""
    message = OutgoingMessage(
        sender=job.sender,
        recipients=envelope(job),
        data=job.message,
        message_id=job.message_id,
        smtputf8=job.smtputf8,
        envid=job.id,
    )
    return as_sent_by(message, profile) if job.via_profile else message


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
