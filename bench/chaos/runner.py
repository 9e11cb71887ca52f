"""A whole chaos run: the rig up, jobs flowing through the faults, every job final, judged.

The one place that orders the parts; each part knows nothing of the others' timing.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from bench.chaos.checks import (
    Verdict,
    check_attempts,
    check_duplicates,
    check_jobs,
    check_recovery,
    find_secrets,
)
from bench.chaos.faults import Chaos
from bench.chaos.plan import Plan
from bench.chaos.processes import ReraisingThread, stop_group, wait_until
from bench.chaos.producer import Progress, UnpublishedJobs, produce
from bench.chaos.records import (
    JobRow,
    database_failures,
    database_text,
    load_attempts,
    load_jobs,
    sweeper_republished,
    token_lock_waits,
)
from bench.chaos.recovery import Recovery, recoveries
from bench.chaos.report import Observed
from bench.chaos.rig import Rig, rig
from bench.chaos.sink import Accepted
from bench.chaos.supervisor import Supervisor
from worker.runtime import Runtime


@dataclass(frozen=True)
class Flow:
    """What happened while the jobs were stored."""

    chaos: Chaos
    job_ids: list[str]
    unpublished: set[str]
    notify_retries: int
    enqueue_seconds: float


def flow(plan: Plan, r: Rig, chaos: Chaos) -> Flow:
    """Store every job at the plan's rate while the chaos schedule runs beside it."""
    started = time.monotonic()
    unpublished = UnpublishedJobs()
    logging.getLogger("worker.intake.notify").addHandler(unpublished)
    progress = Progress(plan.jobs)
    conductor = ReraisingThread(lambda: chaos.run(progress))
    notify_retries = produce(plan, r.rt, progress)
    enqueue_seconds = time.monotonic() - started
    chaos.note("every job stored")
    conductor.join()
    return Flow(chaos, progress.job_ids, unpublished.job_ids, notify_retries, enqueue_seconds)


@dataclass(frozen=True)
class Judged:
    verdict: Verdict
    jobs: list[JobRow]
    accepted: list[Accepted]
    recoveries: list[Recovery]


def judge(plan: Plan, r: Rig, f: Flow, supervisor: Supervisor) -> Judged:
    """Check the records, the sink and every text the run left; stops Redis to read its AOF."""
    jobs = load_jobs(r.rt)
    accepted = r.sink.deliveries()
    verdict = Verdict()
    bad = {f.job_ids[n] for n in range(plan.jobs) if plan.is_bad(n)}
    check_jobs(verdict, jobs, bad, {message.message_id for message in accepted})
    job_of = {job.message_id: job.id for job in jobs}
    check_duplicates(verdict, accepted, f.chaos.crashes, job_of)
    check_attempts(verdict, jobs, load_attempts(r.rt), r.rt.settings.retry_max_attempts)
    recovered = recoveries(f.chaos.kills, r.rt, accepted)
    check_recovery(verdict, recovered)
    verdict.unplanned_exits = list(supervisor.exits)
    texts = {"Redis": r.redis.values(), "the database": database_text(r.rt)}
    r.redis.stop()
    texts["the Redis AOF"] = r.redis.aof()
    texts |= {path.name: path.read_text(errors="replace") for path in sorted(r.logs.glob("*.log"))}
    r.registry.add(*r.tokens.issued)
    verdict.leaks = find_secrets(r.registry, texts)
    return Judged(verdict, jobs, accepted, recovered)


def run(plan: Plan, workdir: Path, logs: Path, database_kind: str) -> tuple[Observed, Verdict]:
    started = time.monotonic()
    with rig(plan, workdir, logs, database_kind) as r:
        chaos = Chaos(plan, r.redis, r.workers, r.tokens, r.sink, r.outage, r.rt)
        supervisor = Supervisor(r.workers, chaos)
        try:
            f = flow(plan, r, chaos)
            if wait_until(lambda: _final(r.rt) >= plan.jobs, plan.final_wait_seconds, poll=0.5):
                chaos.note("every job delivered or failed")
            else:
                chaos.note(f"gave up waiting after {plan.final_wait_seconds:.0f} s")
        finally:
            supervisor.stop()
        stop_group(r.beat)
        r.workers.stop()
        lock_waits = token_lock_waits(r.rt)
        judged = judge(plan, r, f, supervisor)
    final = {job.id for job in judged.jobs if job.status in ("delivered", "failed")}
    to_final = [s for job in judged.jobs if (s := job.seconds_to_final) is not None]
    observed = Observed(
        plan=plan,
        database=database_kind,
        chaos=f.chaos,
        outage=r.outage.description,
        recoveries=judged.recoveries,
        tokens=r.tokens.counts,
        sink=r.sink.counts,
        accepted=len(judged.accepted),
        unpublished=len(f.unpublished),
        unpublished_not_final=len(f.unpublished - final),
        notify_retries=f.notify_retries,
        republished=sweeper_republished(logs),
        database_failures=database_failures(logs),
        token_lock_waits=lock_waits,
        seconds_to_final=sorted(to_final),
        seconds=time.monotonic() - started,
        enqueue_seconds=f.enqueue_seconds,
    )
    return observed, judged.verdict


def _final(rt: Runtime) -> int:
    counts = rt.store.status_counts()
    return counts.get("delivered", 0) + counts.get("failed", 0)
