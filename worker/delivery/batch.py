"""Deliver jobs: claim → limit → send → mark → record, for one job or many at once.

Every delivery goes through ``deliver_jobs``: the ``mailpipe.send_notification``
task claims its job with the other due jobs of its profile and priority that
wait in the queue (``deliver_with_queued``), ``mailpipe.send_batch`` a window of
its batch (``deliver_batch``). Each job goes through the same steps
(``delivery.service``) and gets its own attempt and decision; what jobs claimed
together share is their fixed cost: one statement claims them, their messages
go out over one connection with each message's content pipelined with the
next message's envelope (one round trip per message), one transaction
records them and one Redis round trip counts them. A job that needs more than
a plain send (an earlier send not recorded, out of sends, rate limited) ends
its turn on its own. Testable without Celery: the task only publishes the
retries the decisions ask for.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from datetime import datetime, timedelta

from worker.credentials import Profile
from worker.delivery.decide import Decision, Judged, fallbacks_of, judge
from worker.delivery.service import (
    DeliveryContext,
    after_send,
    attempt_send,
    before_send,
    outgoing,
)
from worker.errors import MailpipeError
from worker.metrics import Samples
from worker.store import Job, utcnow
from worker.transport import SendResult, outcome


def deliver(
    job_id: str, rt: DeliveryContext, *, worker: str, now: Callable[[], datetime] = utcnow
) -> Decision:
    """Deliver this job alone; "skip" if it is done, not due, or being sent elsewhere."""
    decisions = deliver_batch([job_id], rt, worker=worker, now=now)
    if not decisions:
        return Decision("skip", reason="delivered, failed, not due, or being sent elsewhere")
    return decisions[0][1]


def deliver_with_queued(
    job_id: str,
    rt: DeliveryContext,
    *,
    worker: str,
    limit: int,
    now: Callable[[], datetime] = utcnow,
) -> list[tuple[Job, Decision]]:
    """This job and up to ``limit - 1`` due jobs of its profile and priority, oldest first."""
    lease = timedelta(seconds=rt.settings.send_lease_seconds)
    jobs = rt.store.claim_with_queued(job_id, worker, lease, limit=limit)
    return deliver_jobs(jobs, rt, worker=worker, now=now)


def deliver_batch(
    job_ids: Sequence[str],
    rt: DeliveryContext,
    *,
    worker: str,
    now: Callable[[], datetime] = utcnow,
) -> list[tuple[Job, Decision]]:
    """Each claimed job's decision; jobs not claimed (done, not due, elsewhere) are left out."""
    lease = timedelta(seconds=rt.settings.send_lease_seconds)
    jobs = rt.store.claim_many(job_ids, worker, lease)
    return deliver_jobs(jobs, rt, worker=worker, now=now)


def deliver_jobs(
    jobs: Sequence[Job],
    rt: DeliveryContext,
    *,
    worker: str,
    now: Callable[[], datetime] = utcnow,
) -> list[tuple[Job, Decision]]:
    """Deliver jobs claimed together (one claim id) and say what each needs next."""
    if not jobs:
        return []
    claim_id = jobs[0].claim_id  # shared by the batch
    assert claim_id is not None
    decisions: list[tuple[Job, Decision]] = []
    judged: list[Judged] = []
    # The shared lease is renewed for send_max_seconds only (a hung send must
    # not hold its jobs forever): a slow run stops well before, the rest goes
    # back in line untried rather than be sent after another worker took it.
    stop_at = time.monotonic() + rt.settings.send_max_seconds / 2
    with rt.leases.hold(claim_id):
        # Per sending profile, the Profile its first job resolved: one version for the group.
        ready: dict[str, tuple[Profile, list[Job]]] = {}
        for job in jobs:
            ahead = before_send(rt, job, worker, now)
            if isinstance(ahead, Profile):
                ready.setdefault(ahead.name, (ahead, []))[1].append(job)
            else:
                decisions.append((job, ahead))
        try:
            for profile, group in ready.values():
                for job, started, sent in _send_all(rt, profile, group, now, stop_at):
                    early = after_send(rt, job, sent, worker, started, now)
                    if early is not None:
                        decisions.append((job, early))
                    else:
                        fallbacks = fallbacks_of(rt, job)
                        judged.append(
                            judge(rt.settings, job, sent, worker, started, now(), fallbacks)
                        )
        finally:  # what was sent is recorded even if the run broke off
            rt.store.record_attempts([j.entry for j in judged])
    samples = Samples()
    decisions += [(j.job, j.announce(rt.settings, samples)) for j in judged]
    rt.metrics.record(samples)
    return decisions


def _send_all(
    rt: DeliveryContext,
    profile: Profile,
    jobs: list[Job],
    now: Callable[[], datetime],
    stop_at: float,
) -> Iterator[tuple[Job, datetime, SendResult]]:
    """Each job with when its send began and its result, as soon as the server answered.

    If the transport raises a credentials error, that job and every one after
    it get it as their outcome, as each would on its own; anything else (a
    time limit, a bug) is that job's attempt, and the rest are not tried.
    Past ``stop_at`` the rest are not tried either.
    """
    messages = [outgoing(job, profile) for job in jobs]
    results = _started_on_first_read(lambda: rt.transport.send_many(profile, messages))
    rest: SendResult | None = None
    started = now()
    for index, job in enumerate(jobs):
        if rest is None and index and time.monotonic() > stop_at:
            results.close()  # the connection is dropped, the next content never went out
            rest = _untried("the batch ran past its time; back in line")
        if rest is not None:
            yield job, started, rest
            continue
        sent, raised = attempt_send(job.id, lambda: next(results))
        if raised:
            credentials = sent.outcome.phase == "token"
            rest = sent if credentials else _untried("an earlier message of the batch failed")
        yield job, started, sent
        started = now()
    next(results, None)  # read to its end, the transport gives its connection back


def _untried(reason: str) -> SendResult:
    """For a job that was not sent: back in line, no attempt counted."""
    return SendResult(outcome("connect", MailpipeError(f"not tried: {reason}")), busy=True)


def _started_on_first_read(
    send_many: Callable[[], Iterable[SendResult]],
) -> Generator[SendResult]:
    """``send_many()``'s results, called at the first read: what the call raises is caught
    there like any later error."""
    yield from send_many()
