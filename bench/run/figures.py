"""What one measured run yields (`Run`), and the Redis command count it is read from.

Every variant produces the same record, so the tables can put them side by side.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import redis

from bench.run.processes import WorkerRss
from bench.run.tail import TailSplit


@dataclass
class Run:
    variant: str
    messages: int
    seconds: float  # from the first task's start to the last message accepted
    enqueue_per_second: float
    token_requests: int
    redis_commands_per_message: float
    peak_rss_mb: float  # the worker's processes together (rss.total)
    db_statements: Counter[str] | None = None  # by kind, whole run
    latency_ms: tuple[float, float, float] | None = None  # p50, p95, p99
    profile: Counter[str] | None = None  # py-spy samples per step (bench/run/profiling.py)
    # The slowest 1%: median ms before their send began (queue, claim) and in it.
    slowest_wait_send_ms: tuple[float, float] | None = None
    # Client flights at the SMTP front per message: connection set-up included.
    round_trips_per_message: float | None = None
    rss: WorkerRss | None = None  # per process: the main one and each pool child
    # Latency runs: the slowest 1%'s wait split into steps (bench/run/tail.py).
    tail: TailSplit | None = None

    @property
    def rate(self) -> float:
        return self.messages / self.seconds

    @property
    def db_statements_per_message(self) -> float | None:
        if self.db_statements is None:
            return None
        return (
            sum(n for kind, n in self.db_statements.items() if kind != "checkout") / self.messages
        )


def redis_calls(client: redis.Redis) -> int:
    stats = client.info("commandstats")
    return sum(int(v["calls"]) for v in stats.values())
