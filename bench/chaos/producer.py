"""The producer: notify() for every job at a steady rate, retried through a Redis outage.

The faults are timed by its progress, so it publishes the ids it has stored;
and it counts the jobs stored but not published, which only the sweeper saves.
"""

from __future__ import annotations

import logging
import threading
import time

from bench.chaos.plan import Plan
from worker.errors import MailpipeError
from worker.runtime import Runtime

log = logging.getLogger("bench.chaos")

NOTIFY_RETRY_SECONDS = 60.0


class Progress:
    """The ids of the jobs stored so far, in order; the chaos schedule waits on it."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.job_ids: list[str] = []
        self.finished = False
        self._changed = threading.Condition()

    def add(self, job_id: str) -> None:
        with self._changed:
            self.job_ids.append(job_id)
            self._changed.notify_all()

    def finish(self) -> None:
        with self._changed:
            self.finished = True
            self._changed.notify_all()

    def wait_for(self, fraction: float) -> None:
        with self._changed:
            self._changed.wait_for(
                lambda: self.finished or len(self.job_ids) >= fraction * self.total
            )


class UnpublishedJobs(logging.Handler):
    """Jobs ``notify()`` stored but could not publish (broker down).

    notify() does not raise then: worker.intake.notify logs a warning and leaves
    the job to the sweeper. That warning is the only sign, so count it here.
    """

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.job_ids: set[str] = set()

    def emit(self, record: logging.LogRecord) -> None:
        if "not published" in str(record.msg) and isinstance(record.args, tuple):
            self.job_ids.add(str(record.args[0]))


def produce(plan: Plan, rt: Runtime, progress: Progress) -> int:
    """Store plan.jobs jobs at a steady rate; returns how often notify() had to be retried."""
    started = time.monotonic()
    retries = 0
    try:
        for n in range(plan.jobs):
            pause = started + n / plan.rate_per_second - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            job_id, tries = enqueue(plan, rt, n)
            retries += tries
            progress.add(job_id)
    finally:
        progress.finish()
    return retries


def enqueue(plan: Plan, rt: Runtime, n: int) -> tuple[str, int]:
    """notify() for job n, retried while the store is down or busy (for as long as a
    database outage lasts, and more); the idempotency key makes a retry return the
    job already stored rather than a second one."""
    from worker.intake import notify

    recipient = f"nobody-{n}@chaos.test" if plan.is_bad(n) else f"oncall-{n}@chaos.test"
    deadline = time.monotonic() + NOTIFY_RETRY_SECONDS
    tries = 0
    while True:
        try:
            job_id = notify(
                f"chaos-{n % plan.profiles}",
                to=[recipient],
                subject=f"[P{1 + n % 3}] chaos job {n}",
                text=f"Job {n} of the chaos run.\n" + "Disk usage on db-01 is above 95%.\n" * 20,
                priority="high" if n % 4 == 0 else "normal",
                idempotency_key=f"chaos-{n}",
                runtime=rt,
            )
        except MailpipeError as exc:
            if exc.kind != "transient" or time.monotonic() > deadline:
                raise
            log.warning("notify for job %d failed (%s); trying again", n, exc)
            tries += 1
            time.sleep(0.5)
            continue
        return job_id, tries
