"""`make chaos`: jobs keep flowing while workers die, Redis restarts and the servers misbehave.

    python -m bench.chaos [--jobs 2000] [--profiles 5] [--rate 20] [--quick]
                          [--database sqlite|postgresql] [--seed 1] [--keep-logs]

Everything is real and private to the run: a redis-server on a free port with
AOF on (broker in db 0, token cache and locks in db 1), two Celery workers
(``celery -A worker worker -P prefork -c 2``), Celery beat running mailpipe's
own schedule every 2 s instead of every minute (``MAILPIPE_BEAT_INTERVAL_SECONDS``), the
token endpoint below, the
SMTP sink of bench/chaos_sink.py, and a producer calling ``notify()`` at a
steady rate, with one idempotency key per job.

At fixed points of the producer's progress the harness SIGKILLs a worker's
whole process group while it holds a job (three times, starting a replacement
each time), SIGKILLs redis-server, keeps it down for a few seconds and starts
it again on the same port and directory (so it replays its AOF), then arms a
burst of 429s with Retry-After at the token endpoint. All along, the token
endpoint answers 503 to 10% of requests and the sink answers 451 to 5% of
RCPTs, drops 1% of connections after DATA (without keeping the message) and
refuses the handful of permanently bad jobs (``nobody-N@…``) with 550. A
worker that exits on its own is restarted, as a supervisor would, and noted.

Then it waits for every job to be delivered or failed, and checks: no job
lost (not final, delivered but never seen at the sink, or failed without a
reason); duplicates at the sink by Message-ID, each explained or not by the
crash-after-250 window; every attempt recorded; no secret in any log, Redis
value, the AOF or the database. Exit status 1 when a job is lost, a secret
leaked, a duplicate is unexplained, or the attempt records disagree. The full
run writes bench/CHAOS.md; ``--quick`` (the test suite's) writes nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import logging
import os
import platform
import random
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import redis
import sqlalchemy
from cryptography.fernet import Fernet

from bench.chaos_sink import Accepted, ChaosSink
from tests.leaks import SecretRegistry
from tests.support import POSTGRES_URL, RedisServer, fresh_database
from worker import redis_keys
from worker.errors import MailpipeError
from worker.runtime import Runtime

REPO = Path(__file__).parents[1]
OUTPUT = REPO / "bench" / "CHAOS.md"

TOKEN_LIFETIME_SECONDS = 20
BEAT_INTERVAL_SECONDS = 2.0
REDIS_DOWN_SECONDS = 3.0
# A duplicate is explained when its earlier copy reached the sink this long
# (or less) before a crash: the worker got the 250 but died before recording it.
CRASH_WINDOW_SECONDS = 5.0

# Recovery in seconds instead of minutes, keeping worker/celery.py's asserts:
# the longest countdown (12) and the task time limit (10) stay below the
# visibility timeout (30), and the time limit below the send lease (12).
RECOVERY_SETTINGS = {
    # Tokens live 20 s and count as expired 5 s early; beat pre-refreshes those
    # ending within 5 + 5 s. So the token endpoint is asked all through the run
    # and its 503s and 429s meet real requests, not just the first one.
    "token_skew_seconds": "5",
    "token_refresh_window_seconds": "5",
    # A token request (its retries, a waited-out Retry-After) ends well inside a
    # task's soft time limit.
    "token_deadline_seconds": "6",
    "token_retry_after_max_seconds": "3",
    "token_wait_seconds": "5",
    "retry_base_seconds": "1",
    "retry_max_seconds": "10",
    "broker_max_countdown_seconds": "12",
    "visibility_timeout_seconds": "30",
    "task_soft_time_limit_seconds": "8",
    "task_time_limit_seconds": "10",
    "send_lease_seconds": "12",
    # Longer than a job waits in the queue after the Redis restart: the sweeper
    # cannot tell a lost message from a slow one, and republishing a backlog
    # every few seconds only makes it longer.
    "requeue_grace_seconds": "20",
    # Beat runs mailpipe's schedule every few seconds instead of every minute.
    "beat_interval_seconds": str(BEAT_INTERVAL_SECONDS),
    "smtp_timeout_seconds": "5",
    # A new connection, so a token look-up and an AUTH, every 20 messages.
    "smtp_max_messages_per_connection": "20",
}

log = logging.getLogger("bench.chaos")


@dataclass(frozen=True)
class Plan:
    jobs: int
    profiles: int
    rate_per_second: float
    bad_jobs: int
    seed: int
    final_wait_seconds: float

    def is_bad(self, n: int) -> bool:
        """The permanently bad jobs, spread evenly over the run."""
        step = self.jobs // self.bad_jobs
        return n % step == step // 2 and n // step < self.bad_jobs


# -- the token endpoint -----------------------------------------------------------


class FlakyTokenEndpoint:
    """A client-credentials token endpoint that fails on purpose.

    A seeded fraction of requests gets ``503 temporarily_unavailable``;
    ``throttle_next(n)`` makes the next n requests get 429 with Retry-After.
    Tokens live ``lifetime_seconds``; the sink asks ``valid(token)`` at AUTH.
    ``counts`` keys: requests, 503, 429, 401, issued.
    """

    def __init__(self, clients: dict[str, str], *, unavailable_fraction: float, seed: int) -> None:
        self.clients = clients
        self.unavailable_fraction = unavailable_fraction
        self.issued: dict[str, float] = {}  # token → expiry (time.time())
        self.counts: Counter[str] = Counter()
        self._random = random.Random(seed)  # noqa: S311 (reproducible faults, not crypto)
        self._throttled = 0
        self._retry_after_seconds = 0
        self._lock = threading.Lock()
        self.http = ThreadingHTTPServer(("127.0.0.1", 0), _token_handler(self))
        self.http.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}/token"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def throttle_next(self, requests: int, retry_after_seconds: int) -> None:
        with self._lock:
            self._throttled, self._retry_after_seconds = requests, retry_after_seconds

    def valid(self, token: str) -> bool:
        with self._lock:
            return self.issued.get(token, 0.0) > time.time()

    def answer(self, form: dict[str, str]) -> tuple[int, dict[str, Any], dict[str, str]]:
        """(status, JSON body, headers) for one token request."""
        with self._lock:
            self.counts["requests"] += 1
            if self._throttled:
                self._throttled -= 1
                self.counts["429"] += 1
                body = {"error": "temporarily_unavailable", "error_description": "throttled"}
                return 429, body, {"Retry-After": str(self._retry_after_seconds)}
            if self._random.random() < self.unavailable_fraction:
                self.counts["503"] += 1
                return 503, {"error": "temporarily_unavailable"}, {}
            if self.clients.get(form.get("client_id", "")) != form.get("client_secret"):
                self.counts["401"] += 1
                return 401, {"error": "invalid_client"}, {}
            token = secrets.token_urlsafe(32)
            self.issued[token] = time.time() + TOKEN_LIFETIME_SECONDS
            self.counts["issued"] += 1
        issued: dict[str, Any] = {"access_token": token, "token_type": "Bearer"}
        return 200, {**issued, "expires_in": TOKEN_LIFETIME_SECONDS}, {}

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()


def _token_handler(endpoint: FlakyTokenEndpoint) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            status, body, headers = endpoint.answer(form)
            data = json.dumps(body).encode()
            self.send_response(status)
            headers.update({"Content-Type": "application/json", "Content-Length": str(len(data))})
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the counts say it all

    return Handler


# -- processes -----------------------------------------------------------------------


def wait_until(condition: Callable[[], bool], seconds: float, poll: float = 0.05) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(poll)
    return True


class _Thread(threading.Thread):
    """A thread whose exception ``join()`` re-raises in the caller."""

    def __init__(self, target: Callable[[], None]) -> None:
        super().__init__(daemon=True)
        self._work = target
        self._error: BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            self._work()
        except BaseException as exc:
            self._error = exc

    def join(self, timeout: float | None = None) -> None:
        super().join(timeout)
        if self._error is not None:
            raise self._error


def spawn(argv: list[str], env: dict[str, str], log_file: Path) -> subprocess.Popen[bytes]:
    """A subprocess in its own process group, so one killpg takes its children too."""
    with log_file.open("ab") as out:
        return subprocess.Popen(
            argv, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(10)


def stop_group(process: subprocess.Popen[bytes], seconds: float = 30.0) -> None:
    """SIGTERM (a warm shutdown), then SIGKILL whatever of the group is left."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(seconds)
    kill_group(process)


class PrivateRedis(RedisServer):
    """The run's redis-server, AOF on; after a kill, ``start`` replays the AOF."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir()
        super().__init__(directory, aof=True)

    def values(self) -> str:
        """Every key and value in every database, as text (for the secret scan)."""
        texts = []
        for db in range(16):
            client = redis.Redis.from_url(f"{self.url}/{db}")
            texts += [_dump(client, key) for key in client.scan_iter(count=1000)]
            client.close()
        return "\n".join(texts)

    def aof(self) -> str:
        """The AOF holds every write ever made, even to keys deleted since."""
        files = sorted(self.directory.glob("appendonlydir/*"))
        return "\n".join(path.read_bytes().decode(errors="replace") for path in files)


def _dump(client: redis.Redis, key: bytes) -> str:
    kind = client.type(key)
    values: list[Any] = []
    if kind == b"string":
        values = [client.get(key)]
    elif kind == b"hash":
        values = [part for pair in client.hgetall(key).items() for part in pair]
    elif kind == b"list":
        values = client.lrange(key, 0, -1)
    elif kind == b"set":
        values = list(client.smembers(key))
    elif kind == b"zset":
        values = client.zrange(key, 0, -1)
    return " ".join(_text(v) for v in [key, *values] if v)


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value


class Workers:
    """Celery workers, each the leader of its own process group. Thread-safe."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.running: list[tuple[str, subprocess.Popen[bytes]]] = []  # (node name, process)
        self.started = 0
        self._lock = threading.Lock()

    def start(self) -> None:
        with self._lock:
            n, self.started = self.started, self.started + 1
        name, log_file = f"chaos-{n}", self.logs / f"worker-{n}.log"
        process = spawn(
            [sys.executable, "-m", "celery", "-A", "worker", "worker", "-P", "prefork",
             "-c", "2", "-Q", "mail.critical,mail", "-n", f"{name}@%h",
             "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "INFO"],
            self.env, log_file,
        )  # fmt: skip

        def ready() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"worker exited with {process.returncode}: see {log_file}")
            return " ready." in log_file.read_text(errors="replace")

        if not wait_until(ready, 90, poll=0.2):
            raise RuntimeError(f"worker not ready after 90 s: see {log_file}")
        with self._lock:
            self.running.append((name, process))

    def oldest(self) -> str:
        with self._lock:
            return self.running[0][0]

    def kill(self, name: str) -> int:
        """SIGKILL the worker and its pool processes; returns its pid."""
        with self._lock:
            process = dict(self.running)[name]
            self.running.remove((name, process))
        kill_group(process)
        return process.pid

    def exited(self) -> list[tuple[str, int]]:
        """(name, exit code) of the workers that ended on their own, now forgotten."""
        with self._lock:
            gone = [(name, p) for name, p in self.running if p.poll() is not None]
            for entry in gone:
                self.running.remove(entry)
        for _, process in gone:
            kill_group(process)  # whatever of its pool is left
        return [(name, int(process.returncode)) for name, process in gone]

    def stop(self) -> None:
        with self._lock:
            running, self.running = self.running, []
        for _, process in running:
            process.send_signal(signal.SIGTERM)
        for _, process in running:
            stop_group(process)


# -- the producer ----------------------------------------------------------------------


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

    notify() does not raise then: worker.producer logs a warning and leaves
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
    """notify() for job n, retried while the store is busy; the idempotency key
    makes a retry return the job already stored rather than a second one."""
    from worker.intake import notify

    recipient = f"nobody-{n}@chaos.test" if plan.is_bad(n) else f"oncall-{n}@chaos.test"
    for tries in range(20):
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
            if exc.kind != "transient":
                raise
            log.warning("notify for job %d failed (%s); trying again", n, exc)
            time.sleep(0.5)
            continue
        return job_id, tries
    raise RuntimeError(f"notify for job {n} kept failing: see the harness log")


# -- the chaos -------------------------------------------------------------------------


@dataclass(frozen=True)
class ChaosEvent:
    at: float  # time.time()
    what: str
    # May cut a send between the server's 250 and the attempt's record: a worker
    # SIGKILLed, or Redis gone (the workers then cancel their running tasks,
    # worker_cancel_long_running_tasks_on_connection_loss).
    crash: bool = False


class Chaos:
    """Faults at fixed fractions of the producer's progress, noted on a timeline."""

    def __init__(
        self, redis_server: PrivateRedis, workers: Workers, tokens: FlakyTokenEndpoint, rt: Runtime
    ) -> None:
        self.redis = redis_server
        self.workers = workers
        self.tokens = tokens
        self.rt = rt
        self.started = time.time()
        self.timeline: list[ChaosEvent] = []
        self.worker_kills = 0
        self.redis_restarts = 0
        self.caught_mid_send = 0  # jobs a killed worker had claimed

    def run(self, progress: Progress) -> None:
        # The 429 burst comes after the last kill: a worker killed while it waits out
        # a Retry-After leaves the profile's token lock behind for token_lock_seconds
        # (120 s at least), every send for that profile waits on it, and that stall
        # would hide everything else this run measures.
        schedule: list[tuple[float, Callable[[], None]]] = [
            (0.15, self.kill_worker),
            (0.35, self.kill_worker),
            (0.55, self.restart_redis),
            (0.70, self.kill_worker),
            (0.80, self.throttle_tokens),
        ]
        for fraction, action in schedule:
            progress.wait_for(fraction)
            action()

    def kill_worker(self) -> None:
        """SIGKILL the oldest worker, preferably while it holds a job (up to 3 s of waiting)."""
        name = self.workers.oldest()
        wait_until(lambda: self._claimed_by(name) > 0, 3.0, poll=0.005)
        pid = self.workers.kill(name)
        self.worker_kills += 1
        caught = self._claimed_by(name)
        self.caught_mid_send += caught
        self.note(
            f"SIGKILL worker {name} (process group {pid}), {caught} job(s) mid-send", crash=True
        )
        self.workers.start()
        self.note("replacement worker ready")

    def throttle_tokens(self) -> None:
        """Arm a burst of 429s and drop every cached token, so the burst is met at once."""
        self.tokens.throttle_next(6, retry_after_seconds=2)
        for key in self.rt.redis.scan_iter(match=redis_keys.token("*", "*")):
            self.rt.redis.delete(key)
        for profile in self.rt.profiles:
            self.rt.redis.publish(redis_keys.TOKEN_INVALIDATED_CHANNEL, profile.name)
        self.note("token endpoint: the next 6 requests get 429, Retry-After: 2; tokens dropped")

    def restart_redis(self) -> None:
        self.redis.kill()
        self.redis_restarts += 1
        self.note("SIGKILL redis-server", crash=True)
        time.sleep(REDIS_DOWN_SECONDS)
        self.redis.start()
        self.note("redis-server restarted on the same port, AOF replayed")

    def note(self, what: str, *, crash: bool = False) -> None:
        event = ChaosEvent(time.time(), what, crash)
        self.timeline.append(event)
        print(f"chaos: +{event.at - self.started:5.1f}s {what}", flush=True)

    def _claimed_by(self, node: str) -> int:
        """Jobs left claimed by a dead worker: they wait for their lease to end."""
        query = "SELECT count(*) FROM jobs WHERE status = 'sending' AND worker LIKE :node"
        with self.rt.store.engine.connect() as connection:
            found = connection.execute(sqlalchemy.text(query), {"node": f"{node}@%"}).scalar()
        return int(found or 0)

    def crash_times(self) -> list[float]:
        return [event.at for event in self.timeline if event.crash]


class Supervisor:
    """Restarts a worker that exits on its own, as systemd or Kubernetes would; notes it.

    Not chaos of ours: a Celery worker can die of a broker outage by itself.
    """

    def __init__(self, workers: Workers, chaos: Chaos) -> None:
        self.workers = workers
        self.chaos = chaos
        self.restarts = 0
        self._stop = threading.Event()
        self._thread = _Thread(self._watch)

    def _watch(self) -> None:
        while not self._stop.wait(1.0):
            for name, code in self.workers.exited():
                self.restarts += 1
                what = f"worker {name} exited on its own (exit code {code}): restarting it"
                self.chaos.note(what, crash=True)
                self.workers.start()
                self.chaos.note("restarted worker ready")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


# -- the checks --------------------------------------------------------------------------


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


@dataclass
class Verdict:
    delivered: int = 0
    failed: int = 0
    not_final: list[str] = field(default_factory=list)
    delivered_unseen: list[str] = field(default_factory=list)
    failed_without_reason: list[str] = field(default_factory=list)
    unexpected_failures: Counter[str] = field(default_factory=Counter)  # reason → jobs
    duplicates: int = 0
    explained: int = 0
    unexplained: list[str] = field(default_factory=list)
    attempts: int = 0
    attempt_problems: list[str] = field(default_factory=list)
    leaks: list[str] = field(default_factory=list)

    @property
    def lost(self) -> int:
        return len(self.not_final) + len(self.delivered_unseen) + len(self.failed_without_reason)

    @property
    def passed(self) -> bool:
        return not (self.lost or self.unexplained or self.attempt_problems or self.leaks)


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


def check_jobs(verdict: Verdict, jobs: list[JobRow], bad: set[str], seen: set[str]) -> None:
    for job in jobs:
        if job.status == "delivered":
            verdict.delivered += 1
            if job.message_id not in seen:
                verdict.delivered_unseen.append(job.id)
        elif job.status == "failed":
            verdict.failed += 1
            if not job.outcome_text:
                verdict.failed_without_reason.append(job.id)
            elif job.id not in bad:
                verdict.unexpected_failures[job.outcome_text] += 1
        else:
            verdict.not_final.append(f"{job.id} ({job.status})")


def check_duplicates(verdict: Verdict, accepted: list[Accepted], crashes: list[float]) -> None:
    """Each copy after the first is explained when the copy before it reached the sink
    at most CRASH_WINDOW_SECONDS before a crash."""
    arrivals: dict[str, list[float]] = {}
    for message in accepted:
        arrivals.setdefault(message.message_id, []).append(message.at)
    for message_id, times in arrivals.items():
        for earlier in sorted(times)[:-1]:
            verdict.duplicates += 1
            if any(0 <= crash - earlier <= CRASH_WINDOW_SECONDS for crash in crashes):
                verdict.explained += 1
            else:
                verdict.unexplained.append(message_id)


def check_attempts(
    verdict: Verdict, jobs: list[JobRow], outcomes: dict[str, list[str]], max_attempts: int
) -> None:
    for job in jobs:
        attempts = outcomes.get(job.id, [])
        verdict.attempts += len(attempts)
        if len(attempts) != job.attempt_count:
            problem = f"attempt_count {job.attempt_count}, {len(attempts)} attempts rows"
            verdict.attempt_problems.append(f"{job.id}: {problem}")
        if job.status == "delivered" and attempts.count("delivered") != 1:
            problem = f"delivered with {attempts.count('delivered')} delivered attempts"
            verdict.attempt_problems.append(f"{job.id}: {problem}")
        gave_up = bool(attempts) and (attempts[-1] == "permanent" or len(attempts) >= max_attempts)
        if job.status == "failed" and not gave_up:
            problem = f"failed after {attempts}, neither permanent nor out of attempts"
            verdict.attempt_problems.append(f"{job.id}: {problem}")


def database_text(rt: Runtime) -> str:
    """Every text the store keeps about outcomes (the message bodies are the harness's own)."""
    queries = ("SELECT outcome_text FROM jobs", "SELECT text, hint FROM attempts")
    with rt.store.engine.connect() as connection:
        return "\n".join(
            " ".join(str(v) for v in row)
            for query in queries
            for row in connection.execute(sqlalchemy.text(query))
        )


def find_secrets(registry: SecretRegistry, texts: dict[str, str]) -> list[str]:
    """'abcdef… in <where>' for every secret found, shortened so the report leaks nothing."""
    return [
        f"{value[:6]}… in {where}"
        for where, text in texts.items()
        for value in registry.found_in([text])
    ]


def sweeper_republished(logs: Path) -> int:
    """What beat's requeue_stale_jobs put back on the broker, from the workers' logs."""
    pattern = re.compile(r"requeued (\d+) of \d+ stale jobs")
    return sum(
        int(found)
        for path in logs.glob("worker-*.log")
        for found in pattern.findall(path.read_text(errors="replace"))
    )


# -- the report -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Observed:
    """What the run saw besides the verdict, for the summary."""

    plan: Plan
    chaos: Chaos
    tokens: Counter[str]
    sink: Counter[str]
    accepted: int
    unpublished: int
    unpublished_not_final: int
    notify_retries: int
    workers_died: int  # on their own, and restarted
    republished: int
    token_lock_waits: int
    seconds_to_final: list[float]  # per final job, created → delivered or failed, sorted
    seconds: float
    enqueue_seconds: float

    def latency(self, percent: int) -> float:
        values = self.seconds_to_final or [0.0]
        return values[min(len(values) - 1, round(percent / 100 * (len(values) - 1)))]


def summary(o: Observed, v: Verdict) -> list[str]:
    reasons = "all with a recorded reason"
    if v.failed_without_reason:
        reasons = f"{len(v.failed_without_reason)} without a recorded reason"
    lines = [
        f"chaos: {o.plan.jobs} jobs, {o.plan.profiles} profiles, "
        f"{o.chaos.worker_kills} worker kills, {o.chaos.redis_restarts} redis restart, "
        f"token 503s {o.tokens['503']}, 429s {o.tokens['429']}, "
        f"rcpt 451s {o.sink['rcpt_451']}, dropped after DATA {o.sink['dropped_after_data']}",
        f"delivered {v.delivered}, failed {v.failed} ({reasons}), lost {v.lost}",
        f"duplicates at the sink: {v.duplicates} "
        f"(explained by the crash-after-250 window: {v.explained})",
        f"attempts recorded: {v.attempts} for {v.delivered + v.failed + len(v.not_final)} jobs, "
        + (
            "every job's attempt_count matches its attempts rows"
            if not v.attempt_problems
            else f"{len(v.attempt_problems)} problems"
        ),
        "secrets in logs: "
        + ("none" if not v.leaks else f"{len(v.leaks)} FOUND")
        + " (worker, beat and harness logs, every Redis value, the AOF, the database)",
        f"recovery: enqueue failed after store {o.unpublished} (broker down; "
        f"{o.unpublished - o.unpublished_not_final} of them final via the sweeper), "
        f"{o.chaos.caught_mid_send} jobs caught mid-send by the kills, sweeper republished "
        f"{o.republished}, notify retried {o.notify_retries}, workers that died on their own "
        f"{o.workers_died} (restarted), {o.chaos.workers.started} workers started",
        f"token endpoint: {o.tokens['requests']} requests, {o.tokens['issued']} tokens issued, "
        f"attempts that gave up waiting for another process's refresh {o.token_lock_waits}; "
        f"sink: {o.accepted} messages kept, {o.sink['rcpt_550']} RCPTs refused 550, "
        f"{o.sink['auth_rejected']} AUTH rejected",
        f"created to final: p50 {o.latency(50):.1f} s, p99 {o.latency(99):.1f} s, "
        f"max {o.latency(100):.1f} s",
        f"wall time: {o.seconds:.0f} s (enqueueing {o.enqueue_seconds:.0f} s at "
        f"{o.plan.rate_per_second:g} jobs/s)",
    ]
    return lines + problems(v)


def problems(v: Verdict, shown: int = 10) -> list[str]:
    lines = [f"LOST: job {job}" for job in v.not_final[:shown]]
    lines += [f"LOST: job {job} delivered but never seen at the sink" for job in
              v.delivered_unseen[:shown]]  # fmt: skip
    lines += [f"LOST: job {job} failed without a reason" for job in v.failed_without_reason]
    lines += [f"unexpected failure ({n} jobs): {reason}" for reason, n in
              v.unexpected_failures.most_common(shown)]  # fmt: skip
    if v.unexplained:
        lines.append(
            f"WARNING: {len(v.unexplained)} duplicate deliveries NOT explained by the "
            f"crash-after-250 window: {', '.join(sorted(set(v.unexplained))[:shown])}"
        )
    lines += [f"ATTEMPTS: {problem}" for problem in v.attempt_problems[:shown]]
    lines += [f"SECRET LEAKED: {leak}" for leak in v.leaks]
    return lines


def write_report(o: Observed, lines: list[str], command: str) -> None:
    start = o.chaos.started
    timeline = [f"| +{e.at - start:.1f} s | {e.what} |" for e in o.chaos.timeline]
    settings = ", ".join(f"{k}={v}" for k, v in RECOVERY_SETTINGS.items())
    OUTPUT.write_text(
        "\n".join(
            [
                "# Chaos run",
                "",
                f"Written by `{command}` on {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M}Z "
                f"({platform.machine()}, {os.cpu_count()} cores, "
                f"Python {platform.python_version()}).",
                "",
                "```",
                *lines,
                "```",
                "",
                "## Timeline",
                "",
                "| when | what |",
                "| --- | --- |",
                *timeline,
                "",
                "## Settings",
                "",
                f"Tokens live {TOKEN_LIFETIME_SECONDS} s; beat runs mailpipe's schedule every "
                f"{BEAT_INTERVAL_SECONDS:g} s; Redis is down {REDIS_DOWN_SECONDS:g} s; "
                f"2 workers, prefork 2 each; MAILPIPE_*: {settings}.",
                "",
            ]
        )
    )


# -- the run ------------------------------------------------------------------------------------


@contextlib.contextmanager
def database(kind: str, workdir: Path) -> Iterator[str]:
    """A fresh database: SQLite in the work directory, or a throwaway PostgreSQL database
    created next to the test suite's (never the test suite's own, which it shares)."""
    if kind == "sqlite":
        yield fresh_database("sqlite", workdir)
        return
    from worker.store import Store

    name = f"mailpipe_chaos_{secrets.token_hex(4)}"
    url_object = sqlalchemy.make_url(POSTGRES_URL).set(database=name)
    url = url_object.render_as_string(hide_password=False)
    admin = sqlalchemy.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    try:
        store = Store(url)
        store.upgrade()
        store.engine.dispose()
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(sqlalchemy.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


def write_profiles(path: Path, clients: dict[str, str], sink_port: int, token_url: str) -> None:
    """One generic OAuth profile per client (client id → secret)."""
    path.write_text(
        "".join(
            f"""
[profiles.chaos-{i}]
host = "127.0.0.1"
port = {sink_port}
security = "none"
allow_plaintext_auth = true
from_email = "alerts@chaos-{i}.test"
auth = "oauth"
grant = "client_credentials"
token_url = "{token_url}"
allow_insecure_token_url = true
client_id = "{client_id}"
client_secret = "{secret}"
"""
            for i, (client_id, secret) in enumerate(clients.items())
        )
    )


def producer_runtime(settings: dict[str, str]) -> Runtime:
    """This process's runtime, publishing to the run's broker."""
    from worker.runtime import build_runtime
    from worker.settings import Settings

    return build_runtime(Settings(_env_file=None, **settings))  # type: ignore[arg-type]


@dataclass
class Rig:
    """Everything a run starts, up and ready."""

    logs: Path
    redis: PrivateRedis
    tokens: FlakyTokenEndpoint
    sink: ChaosSink
    workers: Workers
    beat: subprocess.Popen[bytes]
    rt: Runtime
    registry: SecretRegistry  # every secret of the run: none may appear anywhere


@contextlib.contextmanager
def rig(plan: Plan, workdir: Path, logs: Path, database_kind: str) -> Iterator[Rig]:
    """Start everything; on the way out, stop it in reverse order."""
    with contextlib.ExitStack() as stack:
        redis_server = PrivateRedis(workdir / "redis")
        stack.callback(redis_server.stop)
        redis_server.start()
        clients = {f"chaos-client-{i}": secrets.token_urlsafe(24) for i in range(plan.profiles)}
        tokens = FlakyTokenEndpoint(clients, unavailable_fraction=0.10, seed=plan.seed)
        stack.callback(tokens.close)
        sink = ChaosSink(
            tokens.valid,
            rcpt_451_fraction=0.05,
            drop_after_data_fraction=0.01,
            data_delay_seconds=0.1,
            seed=plan.seed,
        )
        stack.callback(sink.stop)
        sink.start()
        profiles = workdir / "profiles.toml"
        write_profiles(profiles, clients, sink.port, tokens.url)
        settings = {
            "broker_url": f"{redis_server.url}/0",
            "redis_url": f"{redis_server.url}/1",
            "database_url": stack.enter_context(database(database_kind, workdir)),
            "profiles_file": str(profiles),
            "secret_key": Fernet.generate_key().decode(),
            **RECOVERY_SETTINGS,
        }
        registry = SecretRegistry()
        database_password = sqlalchemy.make_url(settings["database_url"]).password
        registry.add(settings["secret_key"], str(database_password or ""), *clients.values())
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAILPIPE_")}
        env.update({f"MAILPIPE_{k.upper()}": v for k, v in settings.items()})
        workers = Workers(env, logs)
        stack.callback(workers.stop)
        workers.start()
        workers.start()
        beat_argv = [sys.executable, "-m", "celery", "-A", "worker", "beat",
                     "--schedule", str(workdir / "beat"), "--loglevel", "INFO"]  # fmt: skip
        beat = spawn(beat_argv, env, logs / "beat.log")
        stack.callback(stop_group, beat)
        if not wait_until(lambda: "beat: Starting" in (logs / "beat.log").read_text(), 60):
            raise RuntimeError(f"beat did not start: see {logs / 'beat.log'}")
        rt = producer_runtime(settings)
        stack.callback(rt.close)
        yield Rig(logs, redis_server, tokens, sink, workers, beat, rt, registry)


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
    logging.getLogger("worker.producer").addHandler(unpublished)
    progress = Progress(plan.jobs)
    conductor = _Thread(lambda: chaos.run(progress))
    notify_retries = produce(plan, r.rt, progress)
    enqueue_seconds = time.monotonic() - started
    chaos.note("every job stored")
    conductor.join()
    return Flow(chaos, progress.job_ids, unpublished.job_ids, notify_retries, enqueue_seconds)


def judge(plan: Plan, r: Rig, f: Flow) -> tuple[Verdict, list[JobRow], list[Accepted]]:
    """Check the records, the sink and every text the run left; stops Redis to read its AOF."""
    jobs = load_jobs(r.rt)
    accepted = r.sink.deliveries()
    verdict = Verdict()
    bad = {f.job_ids[n] for n in range(plan.jobs) if plan.is_bad(n)}
    check_jobs(verdict, jobs, bad, {message.message_id for message in accepted})
    check_duplicates(verdict, accepted, f.chaos.crash_times())
    check_attempts(verdict, jobs, load_attempts(r.rt), r.rt.settings.retry_max_attempts)
    texts = {"Redis": r.redis.values(), "the database": database_text(r.rt)}
    r.redis.stop()
    texts["the Redis AOF"] = r.redis.aof()
    texts |= {path.name: path.read_text(errors="replace") for path in sorted(r.logs.glob("*.log"))}
    r.registry.add(*r.tokens.issued)
    verdict.leaks = find_secrets(r.registry, texts)
    return verdict, jobs, accepted


def run(plan: Plan, workdir: Path, logs: Path, database_kind: str) -> tuple[Observed, Verdict]:
    started = time.monotonic()
    with rig(plan, workdir, logs, database_kind) as r:
        chaos = Chaos(r.redis, r.workers, r.tokens, r.rt)
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
        verdict, jobs, accepted = judge(plan, r, f)
    final = {job.id for job in jobs if job.status in ("delivered", "failed")}
    observed = Observed(
        plan=plan,
        chaos=f.chaos,
        tokens=r.tokens.counts,
        sink=r.sink.counts,
        accepted=len(accepted),
        unpublished=len(f.unpublished),
        unpublished_not_final=len(f.unpublished - final),
        notify_retries=f.notify_retries,
        workers_died=supervisor.restarts,
        republished=sweeper_republished(logs),
        token_lock_waits=lock_waits,
        seconds_to_final=sorted(s for job in jobs if (s := job.seconds_to_final) is not None),
        seconds=time.monotonic() - started,
        enqueue_seconds=f.enqueue_seconds,
    )
    return observed, verdict


def _final(rt: Runtime) -> int:
    counts = rt.store.status_counts()
    return counts.get("delivered", 0) + counts.get("failed", 0)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--profiles", type=int, default=5)
    parser.add_argument("--rate", type=float, default=20.0, help="jobs stored per second")
    parser.add_argument("--quick", action="store_true", help="a short run (the test suite's)")
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep-logs", action="store_true", help="keep the work directory")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.quick:
        args.jobs, args.rate = 100, 8.0
    plan = Plan(
        jobs=args.jobs,
        profiles=args.profiles,
        rate_per_second=args.rate,
        bad_jobs=max(3, args.jobs // 200),
        seed=args.seed,
        final_wait_seconds=70.0 if args.quick else 600.0,
    )
    workdir = Path(tempfile.mkdtemp(prefix="mailpipe-chaos-"))
    logs = workdir / "logs"
    logs.mkdir()
    logging.basicConfig(
        filename=logs / "harness.log",
        level=logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    try:
        observed, verdict = run(plan, workdir, logs, args.database)
    except BaseException:
        print(f"chaos: the run broke off; logs kept in {workdir}", file=sys.stderr, flush=True)
        raise
    lines = summary(observed, verdict)
    print("\n".join(lines), flush=True)
    if not args.quick:
        write_report(observed, lines, " ".join(["python -m bench.chaos", *sys.argv[1:]]))
    if verdict.passed and not args.keep_logs:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"logs kept in {workdir}", flush=True)
    return 0 if verdict.passed else 1


if __name__ == "__main__":
    sys.exit(main())
