"""`make bench`: mailpipe against two baselines, in one run, repetitions interleaved.

    python -m bench.run [--messages 1000] [--repetitions 3] [--workers 2] [--quick]

Starts its own redis-server, an SMTP sink (Postfix's smtp-sink behind
bench/smtp_front.py, which answers AUTH XOAUTH2; aiosmtpd when smtp-sink is
missing), a token endpoint, and Celery workers. Variants:

- mailpipe: notify() → Redis → `celery -A worker` → XOAUTH2 → sink, with
  database records (SQLite, and PostgreSQL when reachable);
- ideal: a bare Celery task, smtplib over one persistent connection per
  process straight to the sink, no records, no tokens;
- naive: a Celery task that fetches a token and opens a new, authenticated
  SMTP connection per message.

WAN mode repeats mailpipe and naive with the token endpoint answering after
150 ms and every SMTP reply delayed by 20 ms, with Microsoft's limit of 3
connections per mailbox. Writes bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
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

from tests.support import free_port, fresh_database, postgres_reachable

REPO = Path(__file__).parents[1]
# -- the servers ---------------------------------------------------------------


class TokenServer:
    """A client-credentials token endpoint: counts requests, optional delay and lifetime."""

    def __init__(self, lifetime_seconds: int = 3600, delay_seconds: float = 0.0) -> None:
        self.requests: Counter[str] = Counter()
        self.lifetime_seconds = lifetime_seconds
        self.delay_seconds = delay_seconds
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                from urllib.parse import parse_qs

                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                client = parse_qs(body).get("client_id", ["?"])[0]
                outer.requests[client] += 1
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
    sink: str  # host:port, no AUTH (for the ideal baseline)
    front: str  # host:port, answers AUTH XOAUTH2
    sink_name: str
    tokens: TokenServer
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)


@contextmanager
def servers(tmp: Path, *, reply_delay: float, token_delay: float) -> Iterator[Servers]:
    processes: list[subprocess.Popen[bytes]] = []
    cleanup: list[Callable[[], None]] = []
    try:
        redis_port = free_port()
        processes.append(
            subprocess.Popen(
                [
                    "redis-server",
                    "--port",
                    str(redis_port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--maxmemory-policy",
                    "noeviction",
                    "--dir",
                    str(tmp),
                ],
                stdout=subprocess.DEVNULL,
            )
        )
        sink_port, front_port = free_port(), free_port()
        if shutil.which("smtp-sink"):
            user = ["-u", "nobody"] if os.geteuid() == 0 else []
            processes.append(
                subprocess.Popen(
                    ["smtp-sink", *user, "-c", f"127.0.0.1:{sink_port}", "1000"],
                    stdout=subprocess.DEVNULL,
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
        redis_url = f"redis://127.0.0.1:{redis_port}"
        _wait(lambda: _redis_up(redis_url))
        time.sleep(0.5)
        yield Servers(
            redis_url=redis_url,
            sink=f"127.0.0.1:{sink_port}",
            front=f"127.0.0.1:{front_port}",
            sink_name=sink_name,
            tokens=TokenServer(delay_seconds=token_delay),
            processes=processes,
        )
    finally:
        for stop in cleanup:
            stop()
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(10)


def _redis_up(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url).ping())
    except redis.ConnectionError:
        return False


def _wait(condition: Callable[[], bool], seconds: float = 60.0, what: str = "") -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not reached in {seconds}s: {what}")
        time.sleep(0.02)


# -- measuring one run ------------------------------------------------------------


@dataclass
class Run:
    variant: str
    messages: int
    seconds: float
    enqueue_per_second: float
    token_requests: int
    redis_commands_per_message: float
    peak_rss_mb: float
    latency_ms: tuple[float, float, float] | None = None  # p50, p95, p99

    @property
    def rate(self) -> float:
        return self.messages / self.seconds


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
    body = ("Disk usage on db-01 is above 95%. " * 50)[:1800]
    path.write_bytes(
        b"From: Alerts <alerts@bench.test>\r\nTo: oncall@bench.test\r\n"
        b"Subject: [P1] bench\r\nMessage-ID: <{n}@bench.test>\r\n\r\n" + body.encode() + b"\r\n"
    )
    return path


def run_baseline(variant: str, s: Servers, tmp: Path, n: int, workers: int) -> Run:
    client = redis.Redis.from_url(f"{s.redis_url}/2")
    client.flushall()
    env = {
        **os.environ,
        "BENCH_BROKER_URL": f"{s.redis_url}/2",
        "BENCH_SINK": s.sink,
        "BENCH_FRONT": s.front,
        "BENCH_TOKEN_URL": s.tokens.url,
        "BENCH_MESSAGE_FILE": str(message_file(tmp)),
    }
    worker = start_worker(
        ["-A", "bench.baselines", "worker", "-P", "prefork", "-c", str(workers), "-Q", "bench"],
        env,
        tmp / f"{variant}.log",
    )
    from celery import Celery

    producer = Celery("bench-producer", broker=env["BENCH_BROKER_URL"])
    before_tokens = s.tokens.requests["naive"]
    calls = redis_calls(client)
    started = time.perf_counter()
    for i in range(n):
        producer.send_task(f"bench.{variant}", args=[i], queue="bench")
    enqueued = time.perf_counter() - started
    _wait(lambda: int(client.get("bench:done") or 0) >= n, 600, f"{variant} done")
    seconds = time.perf_counter() - started
    run = Run(
        variant=variant,
        messages=n,
        seconds=seconds,
        enqueue_per_second=n / enqueued,
        token_requests=s.tokens.requests["naive"] - before_tokens,
        redis_commands_per_message=(redis_calls(client) - calls) / n,
        peak_rss_mb=peak_rss_mb(worker.pid),
    )
    producer.close()
    stop_worker(worker)
    return run


def run_mailpipe(
    s: Servers, tmp: Path, n: int, workers: int, store_kind: str, *, max_connections: int | None
) -> Run:
    from worker.celery import publish_to
    from worker.producer import notify
    from worker.runtime import build_runtime
    from worker.settings import Settings

    client = redis.Redis.from_url(f"{s.redis_url}/0")
    client.flushall()
    host, port = s.front.split(":")
    profiles = tmp / "bench-profiles.toml"
    profiles.write_text(
        f"""[profiles.bench]
host = "{host}"
port = {port}
security = "none"
allow_plaintext_auth = true
from_email = "alerts@bench.test"
auth = "oauth"
grant = "client_credentials"
token_url = "{s.tokens.url}"
allow_insecure_token_url = true
client_id = "mailpipe"
client_secret = "bench-secret"
"""
        + (f"max_connections = {max_connections}\n" if max_connections else "")
    )
    values = {
        "broker_url": f"{s.redis_url}/0",
        "redis_url": f"{s.redis_url}/1",
        "database_url": fresh_database(store_kind, tmp),
        "profiles_file": str(profiles),
        "secret_key": "bxRHaM7D9dPRE8vu3Bbav7Z4S7kBrBQoRqYi8oUu6Rk=",
        "smtp_max_messages_per_connection": "100000",
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILPIPE_")}
    env.update({f"MAILPIPE_{k.upper()}": v for k, v in values.items()})
    worker = start_worker(
        ["-A", "worker", "worker", "-P", "prefork", "-c", str(workers), "-Q", "mail.critical,mail"],
        env,
        tmp / "mailpipe.log",
    )
    publish_to(values["broker_url"])
    rt = build_runtime(Settings(_env_file=None, **values))  # type: ignore[arg-type]
    before_tokens = s.tokens.requests["mailpipe"]
    calls = redis_calls(client)
    started = time.perf_counter()
    for i in range(n):
        notify(
            "bench",
            to=["oncall@bench.test"],
            subject=f"[P1] bench {i}",
            text=("Disk usage on db-01 is above 95%. " * 50)[:1800],
            runtime=rt,
        )
    enqueued = time.perf_counter() - started

    def delivered() -> int:
        return rt.store.status_counts().get("delivered", 0)

    _wait(lambda: delivered() >= n, 900, "mailpipe done")
    seconds = time.perf_counter() - started
    with rt.store.engine.connect() as connection:
        rows = connection.execute(
            sqlalchemy.text(
                "SELECT jobs.created_at, attempts.ended_at FROM jobs "
                "JOIN attempts ON attempts.job_id = jobs.id"
            )
        ).all()
    latencies = sorted(_ms(created, ended) for created, ended in rows)
    run = Run(
        variant="mailpipe",
        messages=n,
        seconds=seconds,
        enqueue_per_second=n / enqueued,
        token_requests=s.tokens.requests["mailpipe"] - before_tokens,
        redis_commands_per_message=(redis_calls(client) - calls) / n,
        peak_rss_mb=peak_rss_mb(worker.pid),
        latency_ms=(_pct(latencies, 50), _pct(latencies, 95), _pct(latencies, 99)),
    )
    rt.close()
    stop_worker(worker)
    return run


def _ms(created: Any, ended: Any) -> float:
    def parse(value: Any) -> dt.datetime:
        return value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))

    return (parse(ended) - parse(created)).total_seconds() * 1000


def _pct(values: list[float], pct: int) -> float:
    return values[min(len(values) - 1, round(pct / 100 * (len(values) - 1)))]


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
    if runs[0].latency_ms:
        for i, p in enumerate(("p50", "p95", "p99")):
            out[p] = statistics.median(r.latency_ms[i] for r in runs if r.latency_ms)
    return out


def table(rows: dict[str, list[Run]]) -> list[str]:
    lines = [
        "| variant | msg/s (median, min-max) | enqueue/s | latency p50 / p95 / p99 ms "
        "| token requests | Redis cmds/msg | worker peak RSS MiB |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, runs in rows.items():
        s = summarize(runs)
        latency = f"{s['p50']:.0f} / {s['p95']:.0f} / {s['p99']:.0f}" if "p50" in s else "-"
        lines.append(
            f"| {name} | {s['rate']:.0f} ({s['min']:.0f}-{s['max']:.0f}) | {s['enqueue']:.0f} "
            f"| {latency} | {s['tokens']:.0f} | {s['redis']:.1f} | {s['rss']:.0f} |"
        )
    return lines


def ratio(a: list[Run], b: list[Run]) -> str:
    ratios = [x.rate / y.rate for x, y in zip(a, b, strict=False)]
    return f"{statistics.median(ratios):.2f}x (min {min(ratios):.2f}, max {max(ratios):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--wan-messages", type=int, default=150)
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="tiny run (the test suite's)")
    parser.add_argument("--output", type=Path, default=REPO / "bench" / "RESULTS.md")
    args = parser.parse_args()
    if args.quick:
        args.messages, args.wan_messages, args.repetitions = 30, 10, 1

    stores = ["sqlite"] + (["postgresql"] if postgres_reachable() else [])
    local: dict[str, list[Run]] = {}
    wan: dict[str, list[Run]] = {}
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        with servers(tmp, reply_delay=0.0, token_delay=0.0) as s:
            sink_name = s.sink_name
            for _ in range(args.repetitions):
                for store in stores:
                    local.setdefault(f"mailpipe ({store})", []).append(
                        run_mailpipe(
                            s, tmp, args.messages, args.workers, store, max_connections=None
                        )
                    )
                for variant in ("ideal", "naive"):
                    local.setdefault(variant, []).append(
                        run_baseline(variant, s, tmp, args.messages, args.workers)
                    )
        with servers(tmp, reply_delay=0.02, token_delay=0.15) as s:
            for _ in range(args.repetitions):
                wan.setdefault("mailpipe (sqlite)", []).append(
                    run_mailpipe(s, tmp, args.wan_messages, 3, "sqlite", max_connections=3)
                )
                wan.setdefault("naive", []).append(
                    run_baseline("naive", s, tmp, args.wan_messages, 3)
                )

    report = [
        "# Benchmark results",
        "",
        f"Written by `python -m bench.run` on {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M}Z.",
        "",
        f"- machine: {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        f"- sink: {sink_name}",
        f"- command: `{' '.join(['python -m bench.run', *sys.argv[1:]])}`",
        f"- {args.messages} messages of ~2 KB, one recipient, {args.workers} prefork worker "
        f"processes, {args.repetitions} repetitions interleaved; WAN mode: {args.wan_messages} "
        "messages, token endpoint +150 ms, every SMTP reply +20 ms, at most 3 connections",
        "",
        "## Local sink",
        "",
        *table(local),
        "",
    ]
    mailpipe_sqlite = local["mailpipe (sqlite)"]
    report += [
        f"- mailpipe/ideal: {ratio(mailpipe_sqlite, local['ideal'])}",
        f"- mailpipe/naive: {ratio(mailpipe_sqlite, local['naive'])}",
        "",
        "## WAN mode",
        "",
        *table(wan),
        "",
        f"- mailpipe/naive: {ratio(wan['mailpipe (sqlite)'], wan['naive'])}",
        "",
        "Not measured yet: database statements per message, the W = 1, 2, 4 and threads "
        "scaling table, 50 profiles over a run longer than the token lifetime, a profile "
        "of where mailpipe's time per message goes.",
    ]
    text = "\n".join(report) + "\n"
    print(text)
    if not args.quick:
        args.output.write_text(text)


if __name__ == "__main__":
    main()
