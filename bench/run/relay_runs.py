"""One SMTP relay run: smtplib clients against `mailpipe relay` or an aiosmtpd yardstick.

Both yardsticks have the relay's certificate, STARTTLS and AUTH PLAIN. The
fair one (bench/run/yardsticks/fair_smtp.py) parses each message, inserts one row, commits
and LPUSHes the id: what relaying without losing a message costs at the
least, so the relay's share of its rate is mailpipe's own overhead. The
discarding one (bench/run/yardsticks/discard_smtp.py) keeps nothing: aiosmtpd's ceiling,
kept beside it. Each run starts its
server afresh, warms it up over one connection (imports, pools, the relay's
one Argon2 check), then times CLIENTS connections sending back to back.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import redis
import trustme

from bench.run.figures import redis_calls
from bench.run.mailpipe_runs import SECRET_KEY, profile_table
from bench.run.processes import REPO, stop_worker, wait_for
from bench.run.progress import Progress
from bench.run.relay_clients import PASSWORD, USER, Connection, send_concurrently
from bench.run.servers import Servers
from bench.run.yardsticks import fair_store
from tests.support import free_port, fresh_database

RELAY = "mailpipe relay"
SERVERS = {
    RELAY: "bench.run.relay_server",
    "fair": "bench.run.yardsticks.fair_smtp",
    "discard": "bench.run.yardsticks.discard_smtp",
}
CLIENTS = 4
# Threads: processes sent no faster on 2 cores, and spawning 4 costs 5-10 s a run.
CLIENT_KIND = "threads"
WARM_UP = 20  # messages over one connection before the timed ones


@dataclass(frozen=True)
class RelayFiles:
    """What every relay run shares: one certificate for both servers, the relay's profiles."""

    ca_file: Path
    cert_file: Path
    key_file: Path
    profiles: Path


@dataclass
class RelayRun:
    variant: str
    connections: list[Connection]  # the timed ones
    stored: int | None  # new jobs in the variant's database, warm-up excluded (None: discard)
    queued: int | None  # new messages in the broker's queues, likewise
    server_cpu: float  # the server's CPU seconds (user + system) from the clients' start to end
    redis_commands: int  # every Redis command while timed (the relay's; none for discard)

    @property
    def accepted(self) -> int:
        return sum(c.answers[250] for c in self.connections)

    @property
    def sent(self) -> int:
        return sum(c.sent for c in self.connections)

    @property
    def seconds(self) -> float:
        """From the first MAIL of any connection to the last final reply of any."""
        return max(c.last for c in self.connections) - min(c.first for c in self.connections)

    @property
    def rate(self) -> float:
        return self.accepted / self.seconds

    @property
    def cpu_ms_per_message(self) -> float:
        return self.server_cpu / self.sent * 1000

    @property
    def refused(self) -> Counter[int]:
        """Final replies other than 250, by code."""
        total: Counter[int] = Counter()
        for c in self.connections:
            total.update({code: n for code, n in c.answers.items() if code != 250})
        return total


def relay_files(s: Servers, tmp: Path) -> RelayFiles:
    """A test CA and a certificate for 127.0.0.1; the bench profile and relay user ``bench``."""
    from worker.faces.relay.users import hash_password

    names = ("ca.pem", "cert.pem", "key.pem", "profiles.toml")
    files = RelayFiles(*(tmp / f"relay-{name}" for name in names))
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(files.ca_file))
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    files.cert_file.write_bytes(b"".join(pem.bytes() for pem in leaf.cert_chain_pems))
    leaf.private_key_pem.write_to_path(str(files.key_file))
    user = f'[relay.users.{USER}]\nprofile = "bench0"\npassword_hash = "{hash_password(PASSWORD)}"'
    files.profiles.write_text(f"{profile_table('bench0', s, None)}\n{user}\n")
    return files


def _relay_env(files: RelayFiles, s: Servers, tmp: Path) -> tuple[dict[str, str], str]:
    database = fresh_database("sqlite", tmp)
    values = {
        "broker_url": f"{s.redis_url}/0",
        "redis_url": f"{s.redis_url}/1",
        "database_url": database,
        "profiles_file": str(files.profiles),
        "secret_key": SECRET_KEY,
        "relay_tls_cert_file": str(files.cert_file),
        "relay_tls_key_file": str(files.key_file),
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILPIPE_")}
    env.update({f"MAILPIPE_{k.upper()}": v for k, v in values.items()})
    return env, database


@contextmanager
def _server(
    variant: str, args: list[str], env: dict[str, str], log: Path
) -> Iterator[tuple[int, int]]:
    """The variant's server on a free port, up once it says it listens; SIGTERM after."""
    port = free_port()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", SERVERS[variant], str(port), *args],
            env=env,
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )

    def listening() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"{variant} exited:\n{log.read_text()[-2000:]}")
        return "listening on" in log.read_text(errors="replace")

    try:
        wait_for(listening, 60, f"{variant} listening ({log})")
        yield port, process.pid
    finally:
        stop_worker(process)  # SIGTERM (421 to open sessions); SIGKILL after 30 s


def _cpu_seconds(pid: int) -> float:
    """A process's CPU time so far, user and system, from /proc (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(") ")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _queued(redis_url: str) -> int:
    """Messages waiting in the broker's lists (every queue and priority step)."""
    client = redis.Redis.from_url(f"{redis_url}/0")
    return sum(client.llen(key) for key in client.scan_iter() if client.type(key) == b"list")


def run_relay(
    variant: str, s: Servers, tmp: Path, files: RelayFiles, per_connection: int
) -> RelayRun:
    """A fresh server, a warm-up connection, then CLIENTS timed connections."""
    client = redis.Redis.from_url(s.redis_url)
    client.flushall()
    if variant == RELAY:
        env, database, args = *_relay_env(files, s, tmp), []
    else:
        env, database, args = dict(os.environ), "", [str(files.cert_file), str(files.key_file)]
        if variant == "fair":
            database = str(tmp / f"fair-relay-{secrets.token_hex(4)}.db")
            env["BENCH_FAIR_DB"], env["BENCH_FAIR_REDIS"] = database, f"{s.redis_url}/0"
    log = tmp / f"relay-{variant.replace(' ', '-')}.log"
    ca = str(files.ca_file)
    with _server(variant, args, env, log) as (port, pid):
        warm = send_concurrently(port, ca, WARM_UP, 1, "threads")
        cpu, calls = _cpu_seconds(pid), redis_calls(client)
        timed = send_concurrently(port, ca, per_connection, CLIENTS, CLIENT_KIND)
        cpu, calls = _cpu_seconds(pid) - cpu, redis_calls(client) - calls - 1  # less INFO
    errors = [c.error for c in warm + timed if c.error]
    if errors or not sum(c.answers[250] for c in timed):
        answers = [dict(c.answers) for c in timed]
        raise RuntimeError(f"{variant}: {errors or answers}\n{log.read_text()[-2000:]}")
    stored = queued = None
    if variant == "fair":
        stored = fair_store.stored(database) - warm[0].answers[250]
        queued = _queued(s.redis_url) - warm[0].answers[250]
    elif database:
        from worker.store import Store

        store = Store(database)
        stored = sum(store.status_counts().values()) - warm[0].answers[250]
        store.engine.dispose()
        queued = _queued(s.redis_url) - warm[0].answers[250]
    client.flushall()
    return RelayRun(variant, timed, stored, queued, server_cpu=cpu, redis_commands=calls)


def measure_relay(
    s: Servers, tmp: Path, repetitions: int, per_connection: int, progress: Progress
) -> dict[str, list[RelayRun]]:
    """The relay and its yardsticks, repetitions interleaved."""
    files = relay_files(s, tmp)
    runs: dict[str, list[RelayRun]] = {variant: [] for variant in SERVERS}
    for _ in range(repetitions):
        for variant in SERVERS:

            def relay(variant: str = variant) -> RelayRun:
                return run_relay(variant, s, tmp, files, per_connection)

            runs[variant].append(
                progress.run(
                    f"SMTP relay, {variant}", relay, lambda run: f"{run.rate:.0f} accepted msg/s"
                )
            )
    return runs
