"""Everything a run starts, in order and stopped in reverse: Redis, tokens, sink, workers, beat.

Every secret the rig makes is registered, so the checks can look for it anywhere.
The run's processes reach the database through what can take it away (the
SQLite file itself, or a proxy in front of PostgreSQL).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy
from cryptography.fernet import Fernet

from bench.chaos.db_outage import DatabaseOutage, outage_for
from bench.chaos.plan import RECOVERY_SETTINGS, Plan
from bench.chaos.private_redis import PrivateRedis
from bench.chaos.processes import spawn, stop_group, wait_until
from bench.chaos.sink import ChaosSink
from bench.chaos.token_endpoint import FlakyTokenEndpoint
from bench.chaos.workers import Workers
from tests.leaks import SecretRegistry
from tests.support import fresh_database
from worker.runtime import Runtime


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
    outage: DatabaseOutage
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
        database_url, outage = stack.enter_context(
            outage_for(fresh_database(database_kind, workdir))
        )
        settings = {
            "broker_url": f"{redis_server.url}/0",
            "redis_url": f"{redis_server.url}/1",
            "database_url": database_url,
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
        yield Rig(logs, redis_server, tokens, sink, workers, beat, outage, rt, registry)
