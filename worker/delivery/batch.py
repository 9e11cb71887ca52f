"""Deliver several jobs together (the ``mailpipe.send_batch`` task): ``deliver``'s steps, shared.

Each job goes through the same steps as in ``deliver`` (claim, limit, send,
mark, record) and gets its own attempt and decision; what a batch shares is
their fixed cost: one statement claims the jobs, their messages go out over
one connection with each message's content pipelined with the next message's
envelope (one round trip per message), and one transaction records them, one
Redis round trip counts them. A job that needs more than a plain send (an
earlier send not recorded, out of sends, rate limited) ends its turn on its
own, exactly as in ``deliver``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta

from worker.delivery.decide import Decision, Judged, judge
from worker.delivery.service import (
    DeliveryContext,
    attempt_send,
    before_send,
    busy,
    mark_if_accepted,
    outgoing,
)
from worker.metrics import Samples
from worker.store import Job, utcnow
from worker.transport import SendResult


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
    if not jobs:
        return []
    claim_id = jobs[0].claim_id  # shared by the batch
    assert claim_id is not None
    decisions: list[tuple[Job, Decision]] = []
    with rt.leases.hold(claim_id):
        ready: dict[str, list[Job]] = {}
        for job in jobs:
            early = before_send(rt, job, worker, now)
            if early is None:
                ready.setdefault(job.profile, []).append(job)
            else:
                decisions.append((job, early))
        judged: list[Judged] = []
        for profile, group in ready.items():
            for job, started, sent in _send_all(rt, profile, group, now):
                if sent.busy:
                    decisions.append((job, busy(rt, job, sent, now)))
                    continue
                mark_if_accepted(rt, job, sent)
                judged.append(judge(rt.settings, job, sent, worker, started, now()))
        rt.store.record_attempts([j.entry for j in judged])
    samples = Samples()
    decisions += [(j.job, j.announce(rt.settings, samples)) for j in judged]
    rt.metrics.record(samples)
    return decisions


def _send_all(
    rt: DeliveryContext, profile: str, jobs: list[Job], now: Callable[[], datetime]
) -> Iterator[tuple[Job, datetime, SendResult]]:
    """Each job with when its send began and its result, as soon as the server answered.

    If the transport raises (credentials, a bug), that job and every one after
    it get what it raised as their outcome, as each would on its own.
    """
    results = rt.transport.send_many(profile, [outgoing(job) for job in jobs])
    raised: SendResult | None = None
    started = now()
    for job in jobs:
        if raised is None:
            sent, failed = attempt_send(job.id, lambda: next(results))
            raised = sent if failed else None
        yield job, started, raised or sent
        started = now()
    next(results, None)  # read to its end, the transport gives its connection back
