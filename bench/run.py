"""`make bench`: mailpipe against two baselines, in one run, repetitions interleaved.

    python -m bench.run [--messages 1000] [--repetitions 3] [--profile] [--quick]

Starts its own redis-server, an SMTP sink (Postfix's smtp-sink behind
bench/smtp_front.py, which answers AUTH XOAUTH2; aiosmtpd when smtp-sink is
missing), a token endpoint, and Celery workers. Variants:

- mailpipe: notify() → Redis → `celery -A worker` → XOAUTH2 → sink, with
  database records (SQLite, and PostgreSQL when reachable);
- ideal: a bare Celery task, smtplib over one persistent connection per
  process through the same front (no AUTH), no records, no tokens;
- naive: a Celery task that fetches a token and opens a new, authenticated
  SMTP connection per message.

Each is timed as a drain: the messages are enqueued first, then the worker
starts. Also: a scaling table (pools), latency at half the peak rate, token
requests over runs longer than the token lifetime, and (--profile) where the
worker's CPU time goes. WAN mode repeats mailpipe and naive with the token
endpoint answering after 150 ms and every SMTP reply delayed by 20 ms, with
Microsoft's limit of 3 connections per mailbox. Writes bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import itertools
import json
import os
import platform
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import redis
import sqlalchemy

from bench import profiling
from tests.support import RedisServer, free_port, fresh_database, postgres_reachable

REPO = Path(__file__).parents[1]
# -- the servers ---------------------------------------------------------------


class TokenServer:
    """A client-credentials token endpoint: counts requests, optional delay and lifetime."""

    def __init__(self, lifetime_seconds: int = 3600, delay_seconds: float = 0.0) -> None:
        self.requests: Counter[str] = Counter()
        self.times: dict[str, list[float]] = {}  # client_id -> request times (monotonic)
        self.lifetime_seconds = lifetime_seconds
        self.delay_seconds = delay_seconds
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                from urllib.parse import parse_qs

                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                client = parse_qs(body).get("client_id", ["?"])[0]
                outer.requests[client] += 1
                outer.times.setdefault(client, []).append(time.monotonic())
                time.sleep(outer.delay_seconds)
                data = json.dumps(
                    {
                        "access_token": secrets.token_urlsafe(24),
                        "token_type": "Bearer",
                        "expires_in": outer.lifetime_seconds,
                    }
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.http.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}/token"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()


@dataclass
class Servers:
    redis_url: str
    front: str  # host:port of the sink's front: every variant sends through it
    sink_name: str
    tokens: TokenServer


@contextmanager
def servers(tmp: Path, *, reply_delay: float, token_delay: float) -> Iterator[Servers]:
    processes: list[subprocess.Popen[bytes]] = []
    cleanup: list[Callable[[], None]] = []
    try:
        redis_server = RedisServer(tmp)
        cleanup.append(redis_server.stop)
        redis_server.start()
        sink_port, front_port = free_port(), free_port()
        if shutil.which("smtp-sink"):
            user = ["-u", "nobody"] if os.geteuid() == 0 else []
            processes.append(
                subprocess.Popen(
                    ["smtp-sink", *user, "-c", f"127.0.0.1:{sink_port}", "1000"],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,  # "read timeout" for every idle connection
                )
            )
            sink_name = "Postfix smtp-sink (behind bench/smtp_front.py for AUTH)"
        else:
            from tests.smtp_server import FakeSmtpServer

            fake = FakeSmtpServer(tls=None, security="none", auth_required=False)
            fake.port = sink_port
            fake.start()
            cleanup.append(fake.stop)
            sink_name = "aiosmtpd (smtp-sink not installed: apt-get install postfix)"
        processes.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "bench.smtp_front",
                    "--listen",
                    str(front_port),
                    "--sink",
                    str(sink_port),
                    "--delay",
                    str(reply_delay),
                ],
                cwd=REPO,
                stdout=subprocess.DEVNULL,
            )
        )
        time.sleep(0.5)  # the front and the sink bind their ports
        yield Servers(
            redis_url=redis_server.url,
            front=f"127.0.0.1:{front_port}",
            sink_name=sink_name,
            tokens=TokenServer(delay_seconds=token_delay),
        )
    finally:
        for stop in cleanup:
            stop()
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(10)


def _wait(condition: Callable[[], bool], seconds: float = 60.0, what: str = "") -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not reached in {seconds}s: {what}")
        time.sleep(0.02)


# -- measuring one run ------------------------------------------------------------


@dataclass(frozen=True)
class Pool:
    """A worker's execution pool: ``-P kind -c concurrency``."""

    kind: str
    concurrency: int

    def __str__(self) -> str:
        return f"{self.kind} {self.concurrency}"


@dataclass
class Run:
    variant: str
    messages: int
    seconds: float  # from the first task's start to the last message accepted
    enqueue_per_second: float
    token_requests: int
    redis_commands_per_message: float
    peak_rss_mb: float
    db_statements: Counter[str] | None = None  # by kind, whole run
    latency_ms: tuple[float, float, float] | None = None  # p50, p95, p99
    profile: Counter[str] | None = None  # py-spy samples per step (bench/profiling.py)

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


def peak_rss_mb(root: int) -> float:
    """VmHWM of a process and its children (the prefork pool), in MiB."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().split(") ")[1].split()
            pid = int(stat.parent.name)
            if pid != root and int(fields[1]) != root:
                continue
            for line in (stat.parent / "status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return total / 1024


def start_worker(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                *args,
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "-l",
                "INFO",
            ],
            env=env,
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    _wait(lambda: " ready." in log.read_text(errors="replace"), 60, f"worker ready ({log})")
    return worker


def stop_worker(worker: subprocess.Popen[bytes]) -> None:
    worker.send_signal(signal.SIGTERM)
    try:
        worker.wait(30)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait(5)


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
    started = time.perf_counter()
    for i in range(n):
        producer.send_task(f"bench.{variant}", args=[i], queue="bench")
    enqueued = time.perf_counter() - started
    producer.close()
    worker = start_worker(
        ["-A", "bench.baselines", "worker", *_pool_args(pool), "-Q", "bench"],
        env,
        tmp / f"{variant}.log",
    )
    _wait(lambda: int(client.get("bench:done") or 0) >= n, 600, f"{variant} done")
    first, last = (float(v) for v in client.mget("bench:first", "bench:last"))  # type: ignore[arg-type]
    run = Run(
        variant=variant,
        messages=n,
        seconds=last - first,
        enqueue_per_second=n / enqueued,
        token_requests=s.tokens.requests["naive"] - before_tokens,
        redis_commands_per_message=(redis_calls(client) - calls) / n,
        peak_rss_mb=peak_rss_mb(worker.pid),
    )
    stop_worker(worker)
    return run


@dataclass(frozen=True)
class MailpipeSetup:
    """What a mailpipe run varies."""

    store: str = "sqlite"
    pool: Pool = Pool("prefork", 2)
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


def run_mailpipe(s: Servers, tmp: Path, n: int, setup: MailpipeSetup) -> Run:
    from worker.intake import notify
    from worker.runtime import build_runtime
    from worker.settings import Settings

    client = redis.Redis.from_url(f"{s.redis_url}/0")
    client.flushall()
    names = [f"bench{i}" for i in range(setup.profiles)]
    profiles = tmp / "bench-profiles.toml"
    profiles.write_text("".join(_profile(name, s, setup.max_connections) for name in names))
    counts = Path(tempfile.mkdtemp(dir=tmp))
    values = {
        "broker_url": f"{s.redis_url}/0",
        "redis_url": f"{s.redis_url}/1",
        "database_url": fresh_database(setup.store, tmp),
        "profiles_file": str(profiles),
        "secret_key": "bxRHaM7D9dPRE8vu3Bbav7Z4S7kBrBQoRqYi8oUu6Rk=",
        "smtp_max_messages_per_connection": str(setup.messages_per_connection),
        "token_skew_seconds": str(setup.token_skew_seconds),
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILPIPE_")}
    env.update({f"MAILPIPE_{k.upper()}": v for k, v in values.items()})
    env["BENCH_COUNTS_DIR"] = str(counts)
    worker_args = ["-A", "bench.instrumented", "worker", *_pool_args(setup.pool)]
    worker_args += ["-Q", "mail.critical,mail"] + (["-E"] if setup.task_events else [])
    rt = build_runtime(Settings(_env_file=None, **values))  # type: ignore[arg-type]
    before_tokens = sum(s.tokens.requests[name] for name in names)
    calls = redis_calls(client)
    worker = None
    if setup.paced_rate is not None:
        worker = start_worker(worker_args, env, tmp / "mailpipe.log")
    interval = 1 / setup.paced_rate if setup.paced_rate else 0.0
    started = time.perf_counter()
    for i in range(n):
        if interval:
            time.sleep(max(0.0, started + i * interval - time.perf_counter()))
        notify(
            names[i % len(names)],
            to=["oncall@bench.test"],
            subject=f"[P1] bench {i}",
            text=("Disk usage on db-01 is above 95%. " * 50)[:1800],
            runtime=rt,
        )
    enqueued = time.perf_counter() - started
    if worker is None:
        worker = start_worker(worker_args, env, tmp / "mailpipe.log")
    recorder = profiling.Recorder(worker.pid, setup.profile_to) if setup.profile_to else None

    def delivered() -> int:
        return rt.store.status_counts().get("delivered", 0)

    _wait(lambda: delivered() >= n, 900, "mailpipe done")
    profile = recorder.stop() if recorder else None
    rss = peak_rss_mb(worker.pid)
    stop_worker(worker)
    with rt.store.engine.connect() as connection:
        rows = connection.execute(
            sqlalchemy.text(
                "SELECT jobs.created_at, attempts.started_at, attempts.ended_at FROM jobs "
                "JOIN attempts ON attempts.job_id = jobs.id"
            )
        ).all()
    times = [tuple(_time(v) for v in row) for row in rows]
    first = min(started for _, started, _ in times)
    last = max(ended for _, _, ended in times)
    latencies = sorted((ended - created).total_seconds() * 1000 for created, _, ended in times)
    run = Run(
        variant="mailpipe",
        messages=n,
        seconds=(last - first).total_seconds(),
        enqueue_per_second=n / enqueued,
        token_requests=sum(s.tokens.requests[name] for name in names) - before_tokens,
        redis_commands_per_message=(redis_calls(client) - calls) / n,
        peak_rss_mb=rss,
        db_statements=totals(counts),
        latency_ms=(_pct(latencies, 50), _pct(latencies, 95), _pct(latencies, 99))
        if setup.paced_rate
        else None,
        profile=profile,
    )
    rt.close()
    return run


def _profile(name: str, s: Servers, max_connections: int | None) -> str:
    host, port = s.front.split(":")
    return f"""[profiles.{name}]
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
""" + (f"max_connections = {max_connections}\n" if max_connections else "")


def _pool_args(pool: Pool) -> list[str]:
    return ["-P", pool.kind, "-c", str(pool.concurrency)]


def _time(value: Any) -> dt.datetime:
    return value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))


def _pct(values: list[float], pct: int) -> float:
    return values[min(len(values) - 1, round(pct / 100 * (len(values) - 1)))]


def totals(directory: Path) -> Counter[str]:
    """Database statements by kind, summed over the worker processes (bench/instrumented.py)."""
    total: Counter[str] = Counter()
    for path in directory.glob("*.json"):
        total.update(json.loads(path.read_text()))
    return total


# -- token economy -------------------------------------------------------------------


@dataclass
class TokenRun:
    profiles: int
    pool: Pool
    seconds: float
    messages: int
    effective_lifetime: float  # the endpoint's lifetime less the skew
    requests: dict[str, list[float]]  # profile -> request times

    @property
    def total(self) -> int:
        return sum(len(times) for times in self.requests.values())

    @property
    def expected_per_profile(self) -> int:
        """One token at the first message, then one per effective lifetime until the last."""
        last_message = self.seconds * (self.messages - 1) / self.messages
        return int(last_message // self.effective_lifetime) + 1

    @property
    def shortest_gap(self) -> float | None:
        gaps = [b - a for times in self.requests.values() for a, b in itertools.pairwise(times)]
        return min(gaps) if gaps else None


def run_tokens(
    s: Servers, tmp: Path, *, profiles: int, pool: Pool, seconds: float, rate: float, skew: int
) -> TokenRun:
    since = time.monotonic()
    setup = MailpipeSetup(
        pool=pool,
        profiles=profiles,
        token_skew_seconds=skew,
        paced_rate=rate,
        messages_per_connection=1,
    )
    n = int(seconds * rate)
    run_mailpipe(s, tmp, n, setup)
    names = [f"bench{i}" for i in range(profiles)]
    return TokenRun(
        profiles=profiles,
        pool=pool,
        seconds=n / rate,
        messages=n,
        effective_lifetime=s.tokens.lifetime_seconds - skew,
        requests={n: [t for t in s.tokens.times.get(n, []) if t >= since] for n in names},
    )


# -- the report ------------------------------------------------------------------


def summarize(runs: list[Run]) -> dict[str, Any]:
    rates = [r.rate for r in runs]
    out: dict[str, Any] = {
        "rate": statistics.median(rates),
        "min": min(rates),
        "max": max(rates),
        "enqueue": statistics.median(r.enqueue_per_second for r in runs),
        "tokens": statistics.median(r.token_requests for r in runs),
        "redis": statistics.median(r.redis_commands_per_message for r in runs),
        "rss": max(r.peak_rss_mb for r in runs),
    }
    statements = [r.db_statements_per_message for r in runs]
    out["db"] = statistics.median(statements) if None not in statements else None  # type: ignore[type-var]
    latencies = [r.latency_ms for r in runs if r.latency_ms]
    for i, p in enumerate(("p50", "p95", "p99")):
        if latencies:
            out[p] = statistics.median(latency[i] for latency in latencies)
    return out


def _rate(s: dict[str, Any]) -> str:
    return f"{s['rate']:.0f} ({s['min']:.0f}-{s['max']:.0f})"


def table(rows: dict[str, list[Run]]) -> list[str]:
    lines = [
        "| variant | msg/s (median, min-max) | enqueue/s | token requests | Redis cmds/msg "
        "| DB statements/msg | worker peak RSS MiB |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, runs in rows.items():
        s = summarize(runs)
        db = f"{s['db']:.1f}" if s["db"] is not None else "-"
        lines.append(
            f"| {name} | {_rate(s)} | {s['enqueue']:.0f} | {s['tokens']:.0f} | {s['redis']:.1f} "
            f"| {db} | {s['rss']:.0f} |"
        )
    return lines


def statement_mix(runs: list[Run]) -> str:
    total: Counter[str] = Counter()
    for run in runs:
        total.update(run.db_statements or {})
    messages = sum(r.messages for r in runs)
    # Skips what only the workers' start-up ran (PRAGMA, the schema check).
    mix = sorted((kind, n / messages) for kind, n in total.items() if n / messages >= 0.01)
    kinds = ", ".join(f"{kind} {share:.2f}" for kind, share in mix)
    return f"per message: {kinds} (a checkout is a pool checkout; with pre-ping a round trip)"


def latency_table(rows: dict[str, list[Run]]) -> list[str]:
    lines = [
        "| store, pace | msg/s | messages | p50 ms | p95 ms | p99 ms |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, runs in rows.items():
        s = summarize(runs)
        rate = statistics.median(r.enqueue_per_second for r in runs)  # the pace achieved
        lines.append(
            f"| {name} | {rate:.0f} | {runs[0].messages} | {s['p50']:.0f} | {s['p95']:.0f} "
            f"| {s['p99']:.0f} |"
        )
    return lines


def scaling_table(rows: dict[Pool, dict[str, list[Run]]]) -> list[str]:
    lines = [
        "| pool | mailpipe (sqlite) msg/s | ideal msg/s | mailpipe/ideal | token requests "
        "| mailpipe peak RSS MiB |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for pool, runs in rows.items():
        m, i = summarize(runs["mailpipe"]), summarize(runs["ideal"])
        lines.append(
            f"| {pool} | {_rate(m)} | {_rate(i)} | {ratio(runs['mailpipe'], runs['ideal'])} "
            f"| {m['tokens']:.0f} | {m['rss']:.0f} |"
        )
    return lines


def token_table(runs: list[TokenRun]) -> list[str]:
    lines = [
        "| profiles | pool | seconds | messages | token requests | per profile (expected) "
        "| shortest gap between one profile's requests |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for run in runs:
        counts = sorted(len(times) for times in run.requests.values())
        spread = f"{counts[0]}" if counts[0] == counts[-1] else f"{counts[0]}-{counts[-1]}"
        gap = f"{run.shortest_gap:.1f} s" if run.shortest_gap is not None else "-"
        lines.append(
            f"| {run.profiles} | {run.pool} | {run.seconds:.0f} | {run.messages} | {run.total} "
            f"| {spread} ({run.expected_per_profile}) | {gap} |"
        )
    return lines


def ratio(a: list[Run], b: list[Run]) -> str:
    ratios = [x.rate / y.rate for x, y in zip(a, b, strict=False)]
    return f"{statistics.median(ratios):.2f}x (min {min(ratios):.2f}, max {max(ratios):.2f})"


# -- the whole run -------------------------------------------------------------------


@dataclass
class Plan:
    messages: int = 1000
    wan_messages: int = 300
    repetitions: int = 3
    scaling: tuple[Pool, ...] = (Pool("prefork", 1), Pool("prefork", 4), Pool("threads", 4))
    # (profiles, pool) for the token runs, each ``token_seconds`` long at ``token_rate``.
    token_runs: tuple[tuple[int, Pool], ...] = (
        (1, Pool("prefork", 4)),
        (50, Pool("prefork", 1)),
        (50, Pool("prefork", 4)),
    )
    token_lifetime: int = 20
    token_skew: int = 5
    token_seconds: float = 45.0
    token_rate: float = 20.0
    profile: bool = False  # one more drain under py-spy


QUICK = Plan(
    messages=30,
    wan_messages=10,
    repetitions=1,
    scaling=(Pool("threads", 2),),
    token_runs=((3, Pool("prefork", 2)),),
    token_lifetime=4,
    token_skew=1,
    token_seconds=7.0,
    token_rate=10.0,
)
MAIN_POOL = Pool("prefork", 2)


@dataclass
class Results:
    sink: str = ""
    local: dict[str, list[Run]] = field(default_factory=dict)
    latency: dict[str, list[Run]] = field(default_factory=dict)
    scaling: dict[Pool, dict[str, list[Run]]] = field(default_factory=dict)
    tokens: list[TokenRun] = field(default_factory=list)
    wan: dict[str, list[Run]] = field(default_factory=dict)
    profiled: Run | None = None


def measure(plan: Plan, stores: list[str], tmp: Path) -> Results:
    results = Results()
    n = plan.messages
    with servers(tmp, reply_delay=0.0, token_delay=0.0) as s:
        results.sink = s.sink_name
        for _ in range(plan.repetitions):
            for store in stores:
                run = run_mailpipe(s, tmp, n, MailpipeSetup(store=store, pool=MAIN_POOL))
                results.local.setdefault(f"mailpipe ({store})", []).append(run)
            run = run_mailpipe(s, tmp, n, MailpipeSetup(pool=MAIN_POOL, task_events=True))
            results.local.setdefault("mailpipe (sqlite, task events on)", []).append(run)
            for variant in ("ideal", "naive"):
                run = run_baseline(variant, s, tmp, n, MAIN_POOL)
                results.local.setdefault(variant, []).append(run)
        results.scaling[MAIN_POOL] = {
            "mailpipe": results.local["mailpipe (sqlite)"],
            "ideal": results.local["ideal"],
        }
        for _ in range(plan.repetitions):
            for pool in plan.scaling:
                runs = results.scaling.setdefault(pool, {})
                runs.setdefault("mailpipe", []).append(
                    run_mailpipe(s, tmp, n, MailpipeSetup(pool=pool))
                )
                runs.setdefault("ideal", []).append(run_baseline("ideal", s, tmp, n, pool))
        if plan.profile:
            setup = MailpipeSetup(pool=MAIN_POOL, profile_to=tmp / "py-spy.raw")
            results.profiled = run_mailpipe(s, tmp, n, setup)
        for store in stores:
            peak = summarize(results.local[f"mailpipe ({store})"])["rate"]
            for share, name in ((2, "half"), (4, "a quarter")):
                setup = MailpipeSetup(store=store, pool=MAIN_POOL, paced_rate=peak / share)
                results.latency[f"{store}, {name} of the peak"] = [run_mailpipe(s, tmp, n, setup)]
        s.tokens.lifetime_seconds = plan.token_lifetime
        for profiles, pool in plan.token_runs:
            results.tokens.append(
                run_tokens(
                    s,
                    tmp,
                    profiles=profiles,
                    pool=pool,
                    seconds=plan.token_seconds,
                    rate=plan.token_rate,
                    skew=plan.token_skew,
                )
            )
    with servers(tmp, reply_delay=0.02, token_delay=0.15) as s:
        wan_pool = Pool("prefork", 3)
        for _ in range(plan.repetitions):
            setup = MailpipeSetup(pool=wan_pool, max_connections=3)
            results.wan.setdefault("mailpipe (sqlite)", []).append(
                run_mailpipe(s, tmp, plan.wan_messages, setup)
            )
            results.wan.setdefault("naive", []).append(
                run_baseline("naive", s, tmp, plan.wan_messages, wan_pool)
            )
    return results


def report(plan: Plan, results: Results, command: str) -> str:
    mailpipe = results.local["mailpipe (sqlite)"]
    lines = [
        "# Benchmark results",
        "",
        f"Written by `{command}` on {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M}Z.",
        "",
        f"- machine: {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        f"- sink: {results.sink}",
        f"- {plan.messages} messages of ~2 KB, one recipient each, {plan.repetitions} "
        "repetitions interleaved. msg/s is a drain: the messages are enqueued first, then "
        "the worker starts, timed from the first task's start to the last message accepted. "
        "enqueue/s is the producer alone (notify(): validate, store, publish).",
        "",
        f"## Local sink ({MAIN_POOL})",
        "",
        *table(results.local),
        "",
        f"- mailpipe/ideal: {ratio(mailpipe, results.local['ideal'])}",
        f"- mailpipe/naive: {ratio(mailpipe, results.local['naive'])}",
        f"- database statements (sqlite), {statement_mix(mailpipe)}",
        "",
        "## Latency below the peak rate",
        "",
        "Enqueue to accepted by the sink, with the workers running and notify() "
        "called at half and a quarter of the drain rate above (the producer shares "
        "the 2 cores).",
        "",
        *latency_table(results.latency),
        "",
        "## Scaling",
        "",
        *scaling_table(results.scaling),
        "",
        "## Token requests over runs longer than the token lifetime",
        "",
        f"The endpoint's tokens last {plan.token_lifetime} s and mailpipe renews them "
        f"{plan.token_skew} s early, so each profile needs one token per "
        f"{plan.token_lifetime - plan.token_skew} s; messages are spread over the profiles "
        f"at {plan.token_rate:.0f}/s.",
        "",
        *token_table(results.tokens),
        "",
        "## WAN mode",
        "",
        "Token endpoint +150 ms, every SMTP reply +20 ms, at most 3 connections "
        "(Microsoft's limit per mailbox): mailpipe and naive each run 3 worker processes.",
        "",
        *table(results.wan),
        "",
        f"- mailpipe/naive: {ratio(results.wan['mailpipe (sqlite)'], results.wan['naive'])}",
        "",
        "## Where the worker's time goes",
        "",
        *profile_section(results.profiled),
    ]
    return "\n".join(lines) + "\n"


def profile_section(run: Run | None) -> list[str]:
    if run is None or run.profile is None:
        return ["Not profiled in this run (`python -m bench.run --profile`, needs py-spy)."]
    return [
        f"py-spy on the mailpipe (sqlite) worker, {MAIN_POOL}, during one more drain of "
        f"{run.messages} messages ({run.rate:.0f} msg/s while sampled at {profiling.RATE} Hz).",
        "",
        *profiling.table(run.profile, messages=run.messages),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=Plan.messages)
    parser.add_argument("--repetitions", type=int, default=Plan.repetitions)
    parser.add_argument("--quick", action="store_true", help="tiny run (the test suite's)")
    parser.add_argument("--profile", action="store_true", help="one more drain under py-spy")
    parser.add_argument("--output", type=Path, default=REPO / "bench" / "RESULTS.md")
    args = parser.parse_args()
    plan = QUICK if args.quick else Plan(messages=args.messages, repetitions=args.repetitions)
    if args.profile:
        if profiling.py_spy() is None:
            parser.error("--profile needs py-spy: pip install -e '.[bench]'")
        plan = dataclasses.replace(plan, profile=True)
    # The quick run leaves PostgreSQL to the test suite's own store tests.
    postgres = not args.quick and postgres_reachable()
    stores = ["sqlite"] + (["postgresql"] if postgres else [])
    with tempfile.TemporaryDirectory() as tmpdir:
        results = measure(plan, stores, Path(tmpdir))
    text = report(plan, results, " ".join(["python -m bench.run", *sys.argv[1:]]))
    print(text)
    if not args.quick:
        args.output.write_text(text)


if __name__ == "__main__":
    main()
