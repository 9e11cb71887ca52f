"""What the run left behind, read back: jobs, attempts, the store's texts, the sweeper's logs.

The checks judge these records, not what the harness believes it did.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy

from worker.runtime import Runtime


@dataclass(frozen=True)
class JobRow:
    id: str
    status: str
    attempt_count: int
    outcome_text: str | None
    message_id: str
    created_at: dt.datetime
    finished_at: dt.datetime | None

    @property
    def seconds_to_final(self) -> float | None:
        if self.finished_at is None:
            return None
        return (self.finished_at - self.created_at).total_seconds()


def load_jobs(rt: Runtime) -> list[JobRow]:
    from worker.store import Job

    columns = (Job.id, Job.status, Job.attempt_count, Job.outcome_text, Job.message_id)
    query = sqlalchemy.select(*columns, Job.created_at, Job.finished_at)
    with rt.store.engine.connect() as connection:
        return [JobRow(*row) for row in connection.execute(query)]


def token_lock_waits(rt: Runtime) -> int:
    """Attempts that gave up waiting for another process's token refresh."""
    query = "SELECT count(*) FROM attempts WHERE text LIKE '%waiting for another process%'"
    with rt.store.engine.connect() as connection:
        return int(connection.execute(sqlalchemy.text(query)).scalar() or 0)


def load_attempts(rt: Runtime) -> dict[str, list[str]]:
    """Each job's attempt outcomes, in order."""
    query = "SELECT job_id, outcome FROM attempts ORDER BY job_id, number"
    outcomes: dict[str, list[str]] = {}
    with rt.store.engine.connect() as connection:
        for job_id, outcome in connection.execute(sqlalchemy.text(query)):
            outcomes.setdefault(job_id, []).append(outcome)
    return outcomes


def database_text(rt: Runtime) -> str:
    """Every text the store keeps about outcomes (the message bodies are the harness's own)."""
    queries = ("SELECT outcome_text FROM jobs", "SELECT text, hint FROM attempts")
    with rt.store.engine.connect() as connection:
        return "\n".join(
            " ".join(str(v) for v in row)
            for query in queries
            for row in connection.execute(sqlalchemy.text(query))
        )


def sweeper_republished(logs: Path) -> int:
    """What beat's requeue_stale_jobs put back on the broker, from the workers' logs."""
    # tasks.jobs.requeue_stale_jobs: "requeued N of M jobs without a task message"
    pattern = re.compile(r"requeued (\d+) of \d+ (?:stale )?jobs")
    return sum(
        int(found)
        for path in logs.glob("worker-*.log")
        for found in pattern.findall(path.read_text(errors="replace"))
    )


def database_failures(logs: Path) -> tuple[int, int]:
    """(send tasks that failed on the database, lease renewals that failed): the outage's mark."""
    tasks = renewals = 0
    for path in logs.glob("worker-*.log"):
        for line in path.read_text(errors="replace").splitlines():
            if "raised unexpected" in line and "database" in line:
                tasks += 1
            elif "could not renew" in line:
                renewals += 1
    return tasks, renewals
