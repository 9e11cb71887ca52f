"""Recovery times: from each kill to the moment each job the killed worker held was back.

"Back" is the first sign that another worker took the job over: the sink
accepting its message after the kill, an attempt recorded for it by a
worker other than the dead one (a 451, or an accepted send found by its mark
and recorded), or a later kill of another worker that held it (it had claimed
the job back, then was killed in turn: that second wait is its own recovery).
The jobs a worker held come from the database, read once the worker was dead
(``Kill.held``), so the times are what the records show.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy

from bench.chaos.faults import Kill
from bench.chaos.sink import Accepted
from bench.chaos.workers import node_of
from worker.runtime import Runtime
from worker.store import Attempt, Job


@dataclass(frozen=True)
class Recovery:
    kill: Kill
    job_id: str
    lease_left: float  # seconds from the kill to the end of the job's lease
    seconds: float | None  # from the kill to the job back; None: never back
    # "accepted by the sink" | "attempt recorded" | "held by a worker killed later" | "never"
    how: str

    @property
    def after_lease(self) -> float | None:
        """From the end of the lease to the job back: the sweep, the queue, the send."""
        return None if self.seconds is None else self.seconds - self.lease_left


def recoveries(kills: Sequence[Kill], rt: Runtime, accepted: Sequence[Accepted]) -> list[Recovery]:
    held = {job for kill in kills for job in kill.job_ids}
    if not held:
        return []
    with rt.store.engine.connect() as connection:
        message_ids = dict(
            connection.execute(sqlalchemy.select(Job.id, Job.message_id).where(Job.id.in_(held)))
            .tuples()
            .all()
        )
        attempts = connection.execute(
            sqlalchemy.select(Attempt.job_id, Attempt.ended_at, Attempt.worker).where(
                Attempt.job_id.in_(held)
            )
        ).all()
    arrivals: dict[str, list[float]] = {}
    for message in accepted:
        arrivals.setdefault(message.message_id, []).append(message.at)
    recorded: dict[str, list[tuple[float, str]]] = {}
    for job_id, ended_at, worker in attempts:
        recorded.setdefault(job_id, []).append((ended_at.timestamp(), node_of(worker)))
    found = []
    for kill in kills:
        for job in kill.held:
            job_id, lease_left = job.job_id, job.lease_until - kill.at
            signs = [(at, "accepted by the sink") for at in
                     arrivals.get(message_ids.get(job_id, ""), []) if at > kill.at]  # fmt: skip
            signs += [(at, "attempt recorded") for at, node in recorded.get(job_id, [])
                      if at > kill.at and node != kill.worker]  # fmt: skip
            signs += [(later.at, "held by a worker killed later") for later in kills
                      if later.at > kill.at and later.worker != kill.worker
                      and job_id in later.job_ids]  # fmt: skip
            if signs:
                at, how = min(signs)
                found.append(Recovery(kill, job_id, lease_left, at - kill.at, how))
            else:
                found.append(Recovery(kill, job_id, lease_left, None, "never"))
    return found


def percentile(values: Sequence[float], percent: int) -> float:
    """Nearest-rank percentile of ``values`` (0.0 when there are none)."""
    ordered = sorted(values) or [0.0]
    return ordered[min(len(ordered) - 1, round(percent / 100 * (len(ordered) - 1)))]
