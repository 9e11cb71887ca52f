"""One drain by a baseline (ideal or naive, yardsticks/baselines.py): the yardsticks for mailpipe.

The baselines skip mailpipe's producer, records and tokens (naive fetches one
per message), so they show what mailpipe's guarantees cost.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import redis

from bench.run.figures import Run, redis_calls
from bench.run.processes import Pool, pool_args, start_worker, stop_worker, wait_for, worker_rss
from bench.run.servers import Servers


def message_file(tmp: Path) -> Path:
    path = tmp / "message.eml"
    # 1,800 bytes in lines of 72: SMTP servers refuse lines over 1,000 bytes (RFC 5321 4.5.3.1.6).
    text = ("Disk usage on db-01 is above 95%. " * 50)[:1800]
    body = "\r\n".join(text[i : i + 72] for i in range(0, len(text), 72))
    path.write_bytes(
        b"From: Alerts <alerts@bench.test>\r\nTo: oncall@bench.test\r\n"
        b"Subject: [P1] bench\r\nMessage-ID: <{n}@bench.test>\r\n\r\n" + body.encode() + b"\r\n"
    )
    return path


def run_baseline(variant: str, s: Servers, tmp: Path, n: int, pool: Pool) -> Run:
    """A backlog of ``n`` bench tasks, then a worker drains it."""
    client = redis.Redis.from_url(f"{s.redis_url}/2")
    client.flushall()
    env = {
        **os.environ,
        "BENCH_BROKER_URL": f"{s.redis_url}/2",
        "BENCH_FRONT": s.front,
        "BENCH_TOKEN_URL": s.tokens.url,
        "BENCH_MESSAGE_FILE": str(message_file(tmp)),
    }
    from celery import Celery

    producer = Celery("bench-producer", broker=env["BENCH_BROKER_URL"])
    before_tokens = s.tokens.requests["naive"]
    calls = redis_calls(client)
    front = s.counts()
    started = time.perf_counter()
    for i in range(n):
        producer.send_task(f"bench.{variant}", args=[i], queue="bench")
    enqueued = time.perf_counter() - started
    producer.close()
    worker = start_worker(
        ["-A", "bench.run.yardsticks.baselines", "worker", *pool_args(pool), "-Q", "bench"],
        env,
        tmp / f"{variant}.log",
    )
    wait_for(lambda: int(client.get("bench:done") or 0) >= n, 600, f"{variant} done")
    first, last = (float(v) for v in client.mget("bench:first", "bench:last"))  # type: ignore[arg-type]
    rss = worker_rss(worker.pid)
    run = Run(
        variant=variant,
        messages=n,
        seconds=last - first,
        enqueue_per_second=n / enqueued,
        token_requests=s.tokens.requests["naive"] - before_tokens,
        redis_commands_per_message=(redis_calls(client) - calls) / n,
        round_trips_per_message=s.round_trips(front, n),
        peak_rss_mb=rss.total,
        rss=rss,
    )
    stop_worker(worker)
    return run
