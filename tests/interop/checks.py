"""What a matrix case checks once its jobs are sent: copies at the sink, attempts in the store.

``Run`` is one test's view of the matrix: ``settle`` waits until every job is final and the
server has passed on all it accepted (so every copy that will ever reach the sink has
reached it), counts, and records the test's row of the table (tests/interop/matrix.py).
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tests.interop.daemons import wait_until
from tests.interop.mailpipe import Mailpipe
from tests.interop.matrix import ROW
from tests.interop.sink import Sink
from tests.interop.upstreams import Upstream
from worker.store import Job


@dataclass
class Result:
    upstream: Upstream
    jobs: list[Job]
    per_job: collections.Counter[int]  # copies at the sink → how many jobs had that many
    strangers: list[str]  # Message-IDs at the sink that are no job's
    accepted: int  # messages the server's log says it accepted during the test

    @property
    def duplicates(self) -> int:
        return sum((copies - 1) * jobs for copies, jobs in self.per_job.items() if copies > 1)

    def summary(self) -> str:
        """One line each, readable when 200 jobs go wrong, then the servers' logs."""
        outcomes = collections.Counter(tuple(a.outcome for a in j.attempts) for j in self.jobs)
        statuses = collections.Counter(j.status for j in self.jobs)
        other = next((j for j in self.jobs if len(j.attempts) != 1), None)
        example = [(a.outcome, a.phase, a.text) for a in other.attempts] if other else []
        return (
            f"copies per job at the sink (copies: jobs) {dict(self.per_job)}; other messages "
            f"{self.strangers[:3]}; job statuses {dict(statuses)}; attempts per job "
            f"(outcomes: jobs) {dict(outcomes)}, e.g. {example}; accepted by the server "
            f"{self.accepted}; {len(self.upstream.dovecot.panics())} Dovecot panic lines\n"
            f"{self.upstream.logs()}"
        )

    def assert_exactly_once(self) -> None:
        """One copy of each job at the sink, from one recorded attempt; the server agrees."""
        count = len(self.jobs)
        assert (self.per_job, self.strangers) == ({1: count}, []), self.summary()
        assert [(j.status, j.attempt_count, j.sends) for j in self.jobs] == [
            ("delivered", 1, 1)
        ] * count, self.summary()
        assert [[a.outcome for a in j.attempts] for j in self.jobs] == [["delivered"]] * count
        assert self.accepted == count, self.summary()
        assert self.upstream.dovecot.panics() == [], self.summary()


@dataclass
class Run:
    mailpipe: Mailpipe
    upstream: Upstream
    sink: Sink
    record: Callable[[str, object], None]  # pytest's record_property
    accepted_before: int = 0
    started: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.accepted_before = self.upstream.accepted()

    def settle(self, case: str, ids: list[str]) -> Result:
        """Wait until every job is final and the server's queue is empty; count; record."""
        upstream, sink = self.upstream, self.sink
        self.mailpipe.wait_final(ids, seconds=90)
        wait_until(lambda: upstream.queued() == 0, 30,
                   f"{upstream.name} passing on its queue\n{upstream.logs()}")  # fmt: skip
        jobs = [self.mailpipe.job(j) for j in ids]
        message_ids = {j.message_id for j in jobs if j.status == "delivered"}
        wait_until(lambda: message_ids <= set(sink.copies()), 20,
                   f"every delivered job at the sink\n{upstream.logs()}")  # fmt: skip
        copies = sink.copies()
        result = Result(
            upstream=upstream,
            jobs=jobs,
            per_job=collections.Counter(copies[j.message_id] for j in jobs),
            strangers=sorted(set(copies) - {j.message_id for j in jobs}),
            accepted=upstream.accepted() - self.accepted_before,
        )
        delivered = sum(jobs for copies, jobs in result.per_job.items() if copies >= 1)
        seconds = round(time.monotonic() - self.started, 1)
        self.record(ROW, (upstream.name, case, len(ids), delivered, result.duplicates, seconds))
        return result
