"""What an outcome means for the job, decided here and only here; then it is recorded.

- delivered to every recipient (or refused for good by some) → done;
- delivered to some, refused for now by others → those others are retried on
  their own, with backoff, until the attempts run out;
- permanent → failed, never retried;
- transient, or auth rejected (the transport already tried a fresh token) →
  retried with full-jitter backoff (a Retry-After is a floor) until the
  attempts run out; then failed;
- but a page (``fallback_priorities``) whose profile cannot deliver it
  (``fallback_reason``) goes at once through the next profile of its
  profile's ``fallback`` list, before any of the above.

Before a send, a claimed job's turn may end without one (``NotNow``): it ran
out of sends (``out_of_sends``: fails), a rate limit says wait
(``over_limits``: back in line, or fails if it can never fit), or the
mailbox's connections are all busy or the batch stopped before it
(``not_tried``: back in line). Back in line is not an attempt.

Delays up to ``broker_max_countdown_seconds`` wait in the broker (a Celery
retry); longer ones wait in the database for the sweep (``later``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal

from providers.backoff import full_jitter
from worker.delivery.events import settled
from worker.metrics import Samples
from worker.settings import Settings
from worker.store import AttemptEntry, AttemptRecord, Job, NextStep
from worker.transport import Outcome, SendResult

if TYPE_CHECKING:
    from worker.delivery.service import DeliveryContext

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Decision:
    """What the task should do next."""

    action: Literal["done", "skip", "retry", "wait"]
    countdown_seconds: float = 0.0
    reason: str = ""
    # Callbacks the attempt's events made, written with it: the task publishes them.
    callbacks: tuple[str, ...] = ()


def later(settings: Settings, delay: float, *, reason: str) -> Decision:
    """Try again in ``delay`` s: a broker countdown, or the database if that is too long."""
    if delay <= settings.broker_max_countdown_seconds:
        return Decision("retry", countdown_seconds=delay, reason=reason)
    # Longer than the broker should hold a message: wait in the database.
    return Decision("wait", countdown_seconds=delay, reason=reason)


@dataclass(frozen=True)
class NotNow:
    """A claimed job not sent this turn: back in line for ``wait`` s, or (None) it fails."""

    reason: str
    wait: float | None = None


def out_of_sends(settings: Settings, job: Job) -> NotNow | None:
    """The job fails: sent as often as its attempts allow, and no outcome was ever recorded.

    An operator's retry of a failed job starts a new budget (``Job.retried_after``).
    """
    if job.sends - (job.retried_after or 0) > settings.retry_max_attempts:
        return NotNow(f"sent {job.sends - 1} times without a recorded outcome; giving up")
    return None


def over_limits(wait: float, profile: str) -> NotNow | None:
    """What the profile's rate limits said (the wait before its recipients fit) means."""
    if wait == math.inf:
        return NotNow(f"the message has more recipients than profile {profile} may send to a day")
    if wait > 0:
        return NotNow(f"rate limit of profile {profile}", wait)
    return None


def not_tried(settings: Settings, sent: SendResult) -> NotNow | None:
    """A send that never began (the mailbox's connections busy, the batch stopped first)."""
    if sent.busy:
        return NotNow(sent.outcome.text, settings.smtp_slot_wait_seconds)
    return None


@dataclass(frozen=True)
class Route:
    """Which profile a job's attempts go through: its own, or one of its fallbacks."""

    via: str | None  # the fallback the last attempt went through; None: the job's own profile
    since: datetime  # when the job began on that profile
    next: str | None = None  # the fallback after it; None: none left, or the job may not


def route(job: Job, fallbacks: tuple[str, ...], settings: Settings) -> Route:
    """``job``'s route, given its own profile's ``fallback`` list."""
    since = job.via_since or job.created_at
    if not settings.falls_back(job.priority):
        return Route(job.via_profile, since)
    left = fallbacks[fallbacks.index(job.via_profile) + 1 :] if job.via_profile else fallbacks
    return Route(job.via_profile, since, left[0] if left else None)


def fallback_reason(result: Outcome, since: datetime, now: datetime, after: float) -> str | None:
    """Why the profile cannot deliver this message, so the next may try; None: it may yet.

    Never once a server may have accepted it (a reply lost after the data), and
    never for a refusal that names a recipient.
    """
    if result.kind == "delivered" or any(r.accepted for r in result.recipients):
        return None
    if result.phase == "rcpt" or (result.phase == "data" and result.code is None):
        return None
    if result.kind == "auth_rejected" or (
        result.phase in ("token", "auth") and result.kind == "permanent"
    ):
        return "its credentials were refused"
    if result.phase == "tls":
        return "TLS with its server failed"
    if result.phase == "connect" and result.kind == "transient":
        return "its server cannot be reached"
    if result.kind == "transient" and (now - since).total_seconds() >= after:
        return f"it has answered only transient errors for {after:g} s"
    return None


def next_step(
    settings: Settings,
    result: Outcome,
    attempt: int,
    now: datetime,
    *,
    partly_sent: bool,
    way: Route | None = None,
) -> tuple[NextStep, float]:
    """The job's next status (and its recipients still to send), and the delay before it.

    ``partly_sent``: an earlier attempt already delivered to some recipients.
    ``way``: the job's route; without one, no fallback.
    """
    via, since = (way.via, way.since) if way else (None, None)
    after = settings.fallback_after_seconds
    if way and way.next and not partly_sent and fallback_reason(result, way.since, now, after):
        return NextStep("queued", now, None, via=way.next, via_since=now), 0.0
    refused_for_now = [
        r.address for r in result.recipients if not r.accepted and r.kind == "transient"
    ]
    exhausted = attempt >= settings.retry_max_attempts
    if result.kind == "delivered" and (not refused_for_now or exhausted):
        return NextStep("delivered", pending=(), via=via, via_since=since), 0.0
    if result.kind == "permanent" or exhausted:
        # Giving up on the rest of a partial delivery: the message did arrive,
        # and each recipient's fate is in the attempts.
        status = "delivered" if partly_sent else "failed"
        return NextStep(status, pending=(), via=via, via_since=since), 0.0
    delay = full_jitter(
        attempt, base_seconds=settings.retry_base_seconds, max_seconds=settings.retry_max_seconds
    )
    # A token endpoint's Retry-After (e.g. Microsoft's 429, 60 s) is a floor.
    delay = max(delay, result.retry_after_seconds or 0.0)
    pending = refused_for_now if result.kind == "delivered" else None
    return NextStep("queued", now + timedelta(seconds=delay), pending, via, since), delay


def record(
    rt: DeliveryContext,
    job: Job,
    sent: SendResult,
    worker: str,
    started: datetime,
    now: Callable[[], datetime],
) -> Decision:
    """Decide, write the attempt and the job's next state, count it, log it."""
    judged = judge(rt.settings, job, sent, worker, started, now(), fallbacks_of(rt, job))
    entry = judged.entry
    rt.store.record_attempt(
        entry.job_id,
        entry.claim_id,
        entry.record,
        number=entry.number,
        step=entry.step,
        events=entry.events,
    )
    samples = Samples()
    decision = judged.announce(rt.settings, samples)
    rt.metrics.record(samples)
    return decision


@dataclass(frozen=True)
class Judged:
    """An attempt decided but not yet written: ``record`` writes one, a batch many at once."""

    job: Job
    entry: AttemptEntry
    delay: float

    def announce(self, settings: Settings, samples: Samples) -> Decision:
        """Once written: add its metrics to ``samples``, log it, say what the task does."""
        decision = self._decision(settings, samples)
        callbacks = tuple(c for c in (e.callback for e in self.entry.events) if c)
        return replace(decision, callbacks=callbacks) if callbacks else decision

    def _decision(self, settings: Settings, samples: Samples) -> Decision:
        job, entry = self.job, self.entry
        result, step, attempt = entry.record.outcome, entry.step, entry.number
        _samples(job, entry.record, step.status, samples)
        if step.via != job.via_profile:
            samples.count("fallbacks", {"profile": job.profile, "fallback": str(step.via)})
            log.warning(
                "job %s attempt %d: %s; profile %s cannot deliver it, sending through %s",
                job.id, attempt, result.summary(), job.via_profile or job.profile, step.via,
            )  # fmt: skip
            return Decision("retry", reason=f"falling back to profile {step.via}")
        if step.status == "queued":
            # A planned retry is not an error.
            waiting = f" ({len(step.pending)} recipient(s) still to send)" if step.pending else ""
            log.info(
                "job %s attempt %d: %s%s; retry in %.0fs",
                job.id, attempt, result.summary(), waiting, self.delay,
            )  # fmt: skip
            return later(settings, self.delay, reason=result.summary())
        level = logging.INFO if step.status == "delivered" else logging.WARNING
        log.log(level, "job %s attempt %d: %s", job.id, attempt, result.summary())
        return Decision("done", reason=result.summary())


def judge(
    settings: Settings,
    job: Job,
    sent: SendResult,
    worker: str,
    started: datetime,
    ended: datetime,
    fallbacks: tuple[str, ...] = (),
) -> Judged:
    """What an attempt came to for the job: its record and the job's next step.

    ``fallbacks``: the job's own profile's ``fallback`` list.
    """
    result = sent.outcome
    attempt = job.attempt_count + 1
    way = route(job, fallbacks, settings)
    partly_sent = job.pending is not None
    # Counted from an operator's retry of the failed job, which starts a new budget.
    tries = attempt - (job.retried_after or 0)
    step, delay = next_step(settings, result, tries, ended, partly_sent=partly_sent, way=way)
    profile = job.via_profile or job.profile
    sent_to = job.pending if job.pending is not None else job.recipients  # service.envelope
    events = settled(job, sent_to, result, step, ended, profile)
    entry = AttemptRecord(
        profile=profile,
        started_at=started,
        ended_at=ended,
        worker=worker,
        outcome=result,
        token_source=sent.token_source,
        token_seconds=sent.token_seconds,
        reused_connection=sent.reused_connection,
    )
    assert job.claim_id is not None
    return Judged(job, AttemptEntry(job.id, job.claim_id, entry, attempt, step, events), delay)


def fallbacks_of(rt: DeliveryContext, job: Job) -> tuple[str, ...]:
    """The job's own profile's fallbacks (none if that profile is gone from the file)."""
    profile = rt.profiles.by_name.get(job.profile)
    return profile.fallback if profile else ()


def _samples(job: Job, entry: AttemptRecord, status: str, samples: Samples) -> Samples:
    profile = {"profile": job.profile}
    samples.count("attempts", {**profile, "outcome": entry.outcome.kind})
    seconds = (entry.ended_at - entry.started_at).total_seconds()
    samples.observe("send_duration_seconds", profile, seconds)
    if status == "delivered":
        samples.count("jobs_delivered", profile)
        waited = (entry.ended_at - job.created_at).total_seconds()
        samples.observe("enqueue_to_accepted_seconds", profile, waited)
    elif status == "failed":
        samples.count("jobs_failed", profile)
    return samples
