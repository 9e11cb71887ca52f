"""One HTTP intake run: `hey` against mailpipe's `POST /v1/notifications` or a yardstick.

Two yardsticks: the fair one (bench/run/yardsticks/fair_api.py) validates the same JSON with
pydantic, inserts one row, commits and LPUSHes the id: what accepting a job
without losing it costs at the least, so mailpipe's share of it is its own
overhead. The bare one (bench/run/yardsticks/bare_api.py) does nothing: the ceiling of the
HTTP stack alone, kept beside it. Each run
starts its server afresh, warms it up, measures the peak (closed loop, 16
connections), then paces 4 connections at half that peak for the latency.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import redis

from bench.run.mailpipe_runs import SECRET_KEY, profile_table
from bench.run.processes import REPO, stop_worker
from bench.run.servers import Servers
from bench.run.yardsticks import fair_store
from tests.support import free_port, fresh_database

HEY_MISSING = "hey not found: run `make bench` (it installs hey with apt-get)"
PEAK_CONNECTIONS = 16
PACED_CONNECTIONS = 4
SERVERS = {
    "mailpipe": "bench.run.intake_server",
    "fair": "bench.run.yardsticks.fair_api",
    "bare": "bench.run.yardsticks.bare_api",
}


@dataclass
class Hey:
    """What one `hey` run printed: its duration, latencies and status codes."""

    seconds: float
    p50_ms: float
    p99_ms: float
    slowest_ms: float
    statuses: Counter[int]

    @property
    def accepted_per_second(self) -> float:
        return self.statuses[202] / self.seconds

    @property
    def rate(self) -> float:
        return sum(self.statuses.values()) / self.seconds


@dataclass
class IntakeRun:
    variant: str  # "mailpipe", "fair" or "bare"
    peak: Hey  # closed loop
    paced: Hey  # 4 connections at half the peak
    stored: int | None  # jobs in the variant's database afterwards, warm-up excluded (None: bare)

    @property
    def sent(self) -> int:
        return sum(self.peak.statuses.values()) + sum(self.paced.statuses.values())

    @property
    def accepted(self) -> int:
        return self.peak.statuses[202] + self.paced.statuses[202]


def require_hey() -> str:
    """hey's path; exits with one line saying how to get it when it is missing."""
    path = shutil.which("hey")
    if path is None:
        sys.exit(HEY_MISSING)
    return path


def parse_hey(text: str) -> Hey:
    """The summary `hey` prints: Total, the 50% and 99% latency lines, status codes."""
    total = re.search(r"Total:\s+([\d.]+) secs", text)
    slowest = re.search(r"Slowest:\s+([\d.]+) secs", text)
    if total is None or slowest is None:
        raise RuntimeError(f"hey printed no summary:\n{text[-1500:]}")
    statuses = Counter(
        {int(code): int(n) for code, n in re.findall(r"\[(\d{3})\]\s+(\d+) responses", text)}
    )
    return Hey(
        seconds=float(total.group(1)),
        p50_ms=_percentile(text, 50),
        p99_ms=_percentile(text, 99),
        slowest_ms=float(slowest.group(1)) * 1000,
        statuses=statuses,
    )


def _percentile(text: str, pct: int) -> float:
    # hey leaves a line out (or prints "0% in 0.0000") below 100 answers: NaN then.
    match = re.search(rf"^\s*{pct}% in ([\d.]+) secs", text, re.MULTILINE)
    return float(match.group(1)) * 1000 if match else math.nan


def hey(url: str, body: Path, key: str, n: int, connections: int, rate: float = 0.0) -> Hey:
    """``n`` identical POSTs over ``connections``; ``rate`` (all of them, per second) paces."""
    n = requests_sent(n, connections)
    args = [require_hey(), "-n", str(n), "-c", str(connections)]
    if rate:
        args += ["-q", f"{rate / connections:.3f}"]  # hey's -q is per connection
    args += ["-m", "POST", "-T", "application/json", "-D", str(body)]
    args += ["-H", f"Authorization: Bearer {key}", url]
    out = subprocess.run(args, capture_output=True, text=True, check=True, timeout=900)
    return parse_hey(out.stdout)


def requests_sent(n: int, connections: int) -> int:
    """What hey sends for ``-n n``: n // c per connection, so a multiple of c; 100+ for a p99."""
    return -(-max(n, 100) // connections) * connections


def body_file(tmp: Path) -> Path:
    """One notification for the bench profile, ~2 KB of JSON, no Idempotency-Key: each a job."""
    path = tmp / "intake-body.json"
    text = ("Disk usage on db-01 is above 95%. " * 50)[:1800]
    body = {"profile": "bench0", "to": ["oncall@bench.test"], "subject": "[P1] bench"}
    path.write_text(json.dumps({**body, "text": text}))
    return path


def _mailpipe_env(s: Servers, tmp: Path, key: str) -> tuple[dict[str, str], str]:
    from worker.faces.http.keys import digest

    profiles = tmp / "intake-profiles.toml"
    profiles.write_text(profile_table("bench0", s, None))
    database = fresh_database("sqlite", tmp)
    values = {
        "broker_url": f"{s.redis_url}/0",
        "redis_url": f"{s.redis_url}/1",
        "database_url": database,
        "profiles_file": str(profiles),
        "secret_key": SECRET_KEY,
        "api_keys": json.dumps([{"name": "bench", "sha256": digest(key), "profiles": ["*"]}]),
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILPIPE_")}
    env.update({f"MAILPIPE_{k.upper()}": v for k, v in values.items()})
    return env, database


@contextmanager
def _server(module: str, env: dict[str, str], log: Path) -> Iterator[str]:
    port = free_port()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", module, str(port)],
            env=env,
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while not _listening(port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{module} did not start:\n{log.read_text()[-2000:]}")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/v1/notifications"
    finally:
        stop_worker(process)  # SIGTERM, as for a worker; SIGKILL after 30 s


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
    except OSError:
        return False
    return True


def run_intake(
    variant: str, s: Servers, tmp: Path, requests: int, paced_seconds: float
) -> IntakeRun:
    """Peak (``requests`` in a closed loop), then ``paced_seconds`` at half that peak."""
    redis.Redis.from_url(s.redis_url).flushall()
    key = "mp_" + secrets.token_urlsafe(32)
    env, database = (dict(os.environ), "")
    if variant == "mailpipe":
        env, database = _mailpipe_env(s, tmp, key)
    elif variant == "fair":
        database = str(tmp / f"fair-intake-{secrets.token_hex(4)}.db")
        env["BENCH_FAIR_DB"], env["BENCH_FAIR_REDIS"] = database, f"{s.redis_url}/0"
        env["BENCH_FAIR_KEY_SHA256"] = hashlib.sha256(key.encode()).hexdigest()
    body = body_file(tmp)
    with _server(SERVERS[variant], env, tmp / f"intake-{variant}.log") as url:
        # Warm-up: connections, lazy imports, caches. Its jobs are not counted below.
        warm = hey(url, body, key, 100, PACED_CONNECTIONS)
        peak = hey(url, body, key, requests, PEAK_CONNECTIONS)
        if not peak.statuses[202]:
            raise RuntimeError(f"{variant} accepted nothing: {dict(peak.statuses)} (see its log)")
        half = peak.accepted_per_second / 2
        paced = hey(url, body, key, round(half * paced_seconds), PACED_CONNECTIONS, half)
    stored = None
    if variant == "fair":
        stored = fair_store.stored(database) - warm.statuses[202]
    elif database:
        from worker.store import Store

        store = Store(database)
        stored = sum(store.status_counts().values()) - warm.statuses[202]
        store.engine.dispose()
    redis.Redis.from_url(s.redis_url).flushall()
    return IntakeRun(variant=variant, peak=peak, paced=paced, stored=stored)
