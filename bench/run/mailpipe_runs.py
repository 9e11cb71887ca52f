"""One run of mailpipe itself: notify() into Redis, `celery -A bench.run.instrumented` to the sink.

A drain (throughput) or a paced run (latency), read back from mailpipe's own
records and from the statement counts bench/run/instrumented.py leaves behind.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import statistics
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
import sqlalchemy

from bench.run import profiling, tail, timeline
from bench.run.figures import Run, redis_calls
from bench.run.processes import Pool, pool_args, start_worker, stop_worker, wait_for, worker_rss
from bench.run.servers import Servers
from tests.support import fresh_database

SECRET_KEY = "bxRHaM7D9dPRE8vu3Bbav7Z4S7kBrBQoRqYi8oUu6Rk="  # a Fernet key for the bench only
# Frozen, so one instance serves as every setup's default.
DEFAULT_POOL = Pool("prefork", 2)


@dataclass(frozen=True)
class MailpipeSetup:
    """What a mailpipe run varies."""

    store: str = "sqlite"
    pool: Pool = DEFAULT_POOL
    profiles: int = 1
    max_connections: int | None = None
    token_skew_seconds: int = 300
    # None: drain a backlog (throughput); a rate: send at that pace while
    # the workers run (latency).
    paced_rate: float | None = None
    profile_to: Path | None = None  # py-spy's raw output, when profiling
    task_events: bool = False  # as when Flower watches
    # 1 opens a connection, so needs a token, for every message.
    messages_per_connection: int = 100_000
    # notify_many(): the messages go in batch tasks (not paced).
    bulk: bool = False
    # The profile's opt-in: each content in the same write as the next message's commands.
    pipeline_messages: bool = False
    # With bulk: high-priority pages sent while the backlog drains, one per
    # PAGE_INTERVAL; the run's latencies are theirs.
    pages: int = 0


PAGE_INTERVAL = 0.1


# notify_many() calls of the bulk variant: a fan-out of this many messages each.
BULK_CALL = 500


def run_mailpipe(s: Servers, tmp: Path, n: int, setup: MailpipeSetup) -> Run:
    from worker.intake import notify, notify_many
    from worker.queue import CRITICAL_QUEUE, QUEUE, waiting_messages
    from worker.runtime import build_runtime
    from worker.settings import Settings

    client = redis.Redis.from_url(f"{s.redis_url}/0")
    client.flushall()
    names = [f"bench{i}" for i in range(setup.profiles)]
    profiles = tmp / "bench-profiles.toml"
    profiles.write_text(
        "".join(
            profile_table(name, s, setup.max_connections, setup.pipeline_messages) for name in names
        )
    )
    counts = Path(tempfile.mkdtemp(dir=tmp))
    values = {
        "broker_url": f"{s.redis_url}/0",
        "redis_url": f"{s.redis_url}/1",
        "database_url": fresh_database(setup.store, tmp),
        "profiles_file": str(profiles),
        "secret_key": SECRET_KEY,
        "smtp_max_messages_per_connection": str(setup.messages_per_connection),
        "token_skew_seconds": str(setup.token_skew_seconds),
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILPIPE_")}
    env.update({f"MAILPIPE_{k.upper()}": v for k, v in values.items()})
    env["BENCH_COUNTS_DIR"] = str(counts)
    notes = Path(tempfile.mkdtemp(dir=tmp))
    if setup.paced_rate is not None:  # latency: per-job timestamps (bench/run/timeline.py)
        env["BENCH_TIMELINE_DIR"] = str(notes)
        timeline.install_producer()
        timeline.CURRENT.clear()
    worker_args = ["-A", "bench.run.instrumented", "worker", *pool_args(setup.pool)]
    worker_args += ["-Q", "mail.critical,mail"] + (["-E"] if setup.task_events else [])
    rt = build_runtime(Settings(_env_file=None, **values))  # type: ignore[arg-type]
    before_tokens = sum(s.tokens.requests[name] for name in names)
    calls = redis_calls(client)
    front = s.counts()
    worker = None
    if setup.paced_rate is not None:
        worker = start_worker(worker_args, env, tmp / "mailpipe.log")
    interval = 1 / setup.paced_rate if setup.paced_rate else 0.0
    started = time.perf_counter()
    for first_of_call in range(0, n if setup.bulk else 0, BULK_CALL):
        calls_messages = [
            {"to": ["oncall@bench.test"], "subject": f"[P1] bench {i}", "text": _text()}
            for i in range(first_of_call, min(n, first_of_call + BULK_CALL))
        ]
        notify_many(names[0], calls_messages, runtime=rt)
    for i in range(0 if setup.bulk else n):
        if interval:
            time.sleep(max(0.0, started + i * interval - time.perf_counter()))
        called = time.time()
        job_id = notify(
            names[i % len(names)],
            to=["oncall@bench.test"],
            subject=f"[P1] bench {i}",
            text=_text(),
            runtime=rt,
        )
        timeline.CURRENT.mark(job_id, "call", called)
    enqueued = time.perf_counter() - started
    if worker is None:
        worker = start_worker(worker_args, env, tmp / "mailpipe.log")
    recorder = profiling.Recorder(worker.pid, setup.profile_to) if setup.profile_to else None
    paging_started = time.perf_counter()
    for i in range(setup.pages):
        time.sleep(max(0.0, paging_started + i * PAGE_INTERVAL - time.perf_counter()))
        notify(names[0], to=["oncall@bench.test"], subject=f"[P1] page {i}", text=_text(),
               priority="high", runtime=rt)  # fmt: skip

    def delivered() -> int:
        return rt.store.status_counts().get("delivered", 0)

    wait_for(lambda: delivered() >= n + setup.pages, 900, "mailpipe done")

    def consumed() -> bool:
        """Every task message taken and acked (acks_late): a job taken along with another
        leaves its own message behind, which costs the worker too."""
        waiting = [waiting_messages(rt.celery, queue) for queue in (QUEUE, CRITICAL_QUEUE)]
        return waiting == [0, 0] and not client.hlen("unacked")

    wait_for(consumed, 300, "mailpipe's task messages consumed")
    consumed_at = dt.datetime.now(dt.UTC)
    profile = recorder.stop() if recorder else None
    rss = worker_rss(worker.pid)
    stop_worker(worker)
    producer_notes = timeline.CURRENT.as_json()
    timeline.uninstall()
    timeline.CURRENT.clear()
    with rt.store.engine.connect() as connection:
        rows = connection.execute(
            sqlalchemy.text(
                "SELECT jobs.created_at, attempts.started_at, attempts.ended_at, jobs.priority, "
                "jobs.id FROM jobs JOIN attempts ON attempts.job_id = jobs.id"
            )
        ).all()
    times = [tuple(_time(v) for v in row[:3]) for row in rows]
    paged = [tuple(_time(v) for v in row[:3]) for row in rows if row[3] == "high"]
    first = min(started for _, started, _ in times)
    # A drain ends when the last message is accepted and the last task message is done.
    last = max(ended for _, _, ended in times)
    if setup.paced_rate is None and not setup.pages:
        last = max(last, consumed_at.replace(tzinfo=last.tzinfo))
    timed = paged if setup.pages else times
    latencies = sorted((ended - created).total_seconds() * 1000 for created, _, ended in timed)
    # Where the slowest 1% spent their time: before the send began (queue, claim) or in it.
    slowest = sorted(timed, key=lambda t: t[2] - t[0])[-max(1, len(timed) // 100) :]
    slow_split = (
        statistics.median(
            (started - created).total_seconds() * 1000 for created, started, _ in slowest
        ),
        statistics.median(
            (ended - started).total_seconds() * 1000 for _, started, ended in slowest
        ),
    )
    run = Run(
        variant="mailpipe bulk" if setup.bulk else "mailpipe",
        messages=n,
        seconds=(last - first).total_seconds(),
        enqueue_per_second=n / enqueued,
        token_requests=sum(s.tokens.requests[name] for name in names) - before_tokens,
        redis_commands_per_message=(redis_calls(client) - calls) / n,
        round_trips_per_message=s.round_trips(front, n + setup.pages),
        peak_rss_mb=rss.total,
        rss=rss,
        db_statements=totals(counts),
        latency_ms=(_pct(latencies, 50), _pct(latencies, 95), _pct(latencies, 99))
        if setup.paced_rate or setup.pages
        else None,
        slowest_wait_send_ms=slow_split if setup.paced_rate or setup.pages else None,
        tail=(
            tail.split(producer_notes, tail.load(notes), _first_attempts(rows))
            if setup.paced_rate is not None
            else None
        ),
        profile=profile,
    )
    rt.close()
    return run


def _first_attempts(rows: Any) -> list[tuple[str, dt.datetime, dt.datetime]]:
    """(job id, started_at, ended_at) of each job's first attempt."""
    first: dict[str, tuple[str, dt.datetime, dt.datetime]] = {}
    for row in rows:
        started, ended = _time(row[1]), _time(row[2])
        if row[4] not in first or started < first[row[4]][1]:
            first[row[4]] = (row[4], started, ended)
    return list(first.values())


def profile_table(
    name: str, s: Servers, max_connections: int | None, pipeline_messages: bool = False
) -> str:
    """The ``[profiles.NAME]`` table of a bench profile: XOAUTH2 to the front, tokens from ours."""
    host, port = s.front.split(":")
    return (
        f"""[profiles.{name}]
host = "{host}"
port = {port}
security = "none"
allow_plaintext_auth = true
from_email = "alerts@bench.test"
auth = "oauth"
grant = "client_credentials"
token_url = "{s.tokens.url}"
allow_insecure_token_url = true
client_id = "{name}"
client_secret = "bench-secret"
"""
        + (f"max_connections = {max_connections}\n" if max_connections else "")
        + ("pipeline_messages = true\n" if pipeline_messages else "")
    )


def _text() -> str:
    return ("Disk usage on db-01 is above 95%. " * 50)[:1800]


def _time(value: Any) -> dt.datetime:
    return value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))


def _pct(values: list[float], pct: int) -> float:
    return values[min(len(values) - 1, round(pct / 100 * (len(values) - 1)))]


def totals(directory: Path) -> Counter[str]:
    """Database statements by kind, summed over the worker processes (bench/run/instrumented.py)."""
    total: Counter[str] = Counter()
    for path in directory.glob("*.json"):
        total.update(json.loads(path.read_text()))
    return total
