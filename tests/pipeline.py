"""A whole mailpipe: real Celery workers (subprocesses) on a private Redis, the test SMTP
server and token endpoint, and a store on SQLite and PostgreSQL (the ``pipeline`` fixture)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from tests.fakes.graph import FakeGraph
from tests.fakes.idp import FakeIdP, reply
from tests.fakes.idp_bodies import MS_EXPIRED_SECRET
from tests.fakes.smtp_server import FakeSmtpServer, ServerFactory, TlsFiles
from tests.forkserver import ForkedProcess, ForkServer
from tests.leaks import SecretRegistry
from worker.faces.http.keys import digest
from worker.faces.relay.users import hash_password
from worker.runtime import Runtime, build_runtime
from worker.settings import Settings

CLIENT_SECRET = "pipeline-client-secret-value"
REPO = Path(__file__).parents[1]
# The SMTP relay's users log in with this password (hashed once, Argon2 is slow).
RELAY_PASSWORD = "relay-test-password-value"
RELAY_HASH = hash_password(RELAY_PASSWORD)
# The key of every callback's signature (MAILPIPE_CALLBACK_SECRET).
CALLBACK_SECRET = "pipeline-callback-secret-value"
# The HTTP intake's key in every pipeline: tests of `serve` present it.
API_KEY = "mp_pipeline-test-api-key-0123456789abcdefghijklmnop"
# A second key that may use only another profile and route: for the 403s.
LIMITED_KEY = "mp_pipeline-limited-api-key-0123456789abcdefghijkl"
API_KEYS = [
    {"name": "tests", "sha256": digest(API_KEY), "profiles": ["*"], "routes": ["*"]},
    {"name": "limited", "sha256": digest(LIMITED_KEY), "profiles": ["other"], "routes": ["x"]},
]


# A Celery process of a pipeline: forked by the fork server, or started afresh.
Process = ForkedProcess | subprocess.Popen[bytes]


@dataclass
class Pipeline:
    runtime: Runtime
    server: FakeSmtpServer
    idp: FakeIdP
    graph: FakeGraph
    env: dict[str, str]
    logs: Path
    forks: ForkServer
    workers: list[Process] = field(default_factory=list)

    def start_worker(
        self, pool: str = "threads", concurrency: int = 4, *, fresh: bool = False
    ) -> Process:
        """A worker in a process group of its own, so a kill can take its children too.

        Forked from the test process's fork server (tests/forkserver.py), or with
        ``fresh`` started by ``python -m celery`` in a new interpreter, as users start it.
        """
        argv = ["-A", "worker", "worker", "-P", pool, "-c", str(concurrency),
                "-Q", "mail.critical,mail", "-n", f"w{len(self.workers)}@%h", "-l", "INFO",
                "--without-gossip", "--without-mingle", "--without-heartbeat"]  # fmt: skip
        return self._start(argv, self.logs / f"worker-{len(self.workers)}.log", fresh=fresh)

    def start_beat(self) -> Process:
        """Celery beat with mailpipe's schedule (the sweep every second here)."""
        schedule = str(self.logs / "beat-schedule")
        argv = ["-A", "worker", "beat", "--schedule", schedule, "-l", "INFO"]
        return self._start(argv, self.logs / "beat.log", fresh=False)

    def _start(self, argv: list[str], log_path: Path, *, fresh: bool) -> Process:
        process: Process
        if fresh:
            with log_path.open("wb") as log:
                process = subprocess.Popen(
                    [sys.executable, "-m", "celery", *argv], env=self.env, cwd=REPO,
                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                )  # fmt: skip
        else:
            process = self.forks.start(argv, self.env, REPO, log_path)
        self.workers.append(process)
        return process

    def kill(self, process: Process) -> None:
        """SIGKILL a worker's whole process group: parent and pool children, no goodbye."""
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)

    def wait_for(self, condition: Callable[[], bool], seconds: float = 30.0) -> None:
        deadline = time.monotonic() + seconds
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"not reached in {seconds}s; see {self.logs}")
            time.sleep(0.05)

    def status(self, job_id: str) -> str:
        job = self.runtime.store.get_job(job_id)
        return job.status if job else "missing"

    def wait_final(self, *job_ids: str, seconds: float = 30.0) -> None:
        self.wait_for(
            lambda: all(self.status(j) in ("delivered", "failed") for j in job_ids), seconds
        )

    def add_expired_secret_profile(
        self, name: str, http_server: HTTPServer, secrets: SecretRegistry
    ) -> FakeIdP:
        """A client-credentials profile whose own token endpoint answers Microsoft's
        "client secret expired" (invalid_client, AADSTS7000222); loaded before it returns."""
        refusing = FakeIdP(http_server, secrets, path=f"/{name}-expired-token")
        refusing.handlers["client_credentials"] = reply(*MS_EXPIRED_SECRET)
        path = self.runtime.profiles_file.path
        path.write_text(
            path.read_text()
            + f"""
[profiles.{name}]
host = "127.0.0.1"
from_email = "{name}@example.test"
auth = "oauth"
grant = "client_credentials"
token_url = "{refusing.url}"
allow_insecure_token_url = true
scope = "smtp.send"
client_id = "mailpipe"
client_secret_env = "PIPELINE_SECRET"
"""
        )
        self.wait_for(lambda: name in self.runtime.profiles.by_name)
        return refusing

    def worker_logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.logs.glob("*.log")))


@pytest.fixture
def upstream_options() -> dict[str, object]:
    """Options of the pipeline's SMTP server (``make_server``); a module may override them."""
    return {}


@pytest.fixture(scope="session")
def forkserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ForkServer]:
    """This test process's fork server, started by its first pipeline that starts a worker."""
    server = ForkServer(tmp_path_factory.mktemp("forked"))
    yield server
    server.close()


@pytest.fixture
def pipeline(
    forkserver: ForkServer,
    upstream_options: dict[str, object],
    tmp_path: Path,
    database_url: str,
    redis_server: str,
    redis_url: str,
    secret_key: str,
    idp: FakeIdP,
    make_server: ServerFactory,
    tls: TlsFiles,
    secrets: SecretRegistry,
    graph: FakeGraph,
) -> Iterator[Pipeline]:
    server = make_server(**upstream_options)
    profiles = tmp_path / "profiles.toml"
    profiles.write_text(f"""
[profiles.alerts]
host = "{server.host}"
port = {server.port}
security = "starttls"
ca_file = "{tls.ca_pem}"
from_email = "alerts@example.test"
from_name = "Example Alerts"
auth = "oauth"
grant = "client_credentials"
token_url = "{idp.url}"
allow_insecure_token_url = true
scope = "smtp.send"
client_id = "mailpipe"
client_secret_env = "PIPELINE_SECRET"

[profiles.graph]
provider = "microsoft365"
transport = "graph"
graph_url = "{graph.url}"
ca_file = "{tls.ca_pem}"
tenant = "contoso.onmicrosoft.com"
from_email = "alerts@example.test"
auth = "oauth"
grant = "client_credentials"
token_url = "{idp.url}"
allow_insecure_token_url = true
client_id = "mailpipe"
client_secret_env = "PIPELINE_SECRET"

[routes.oncall]
profile = "alerts"
to = ["oncall@example.test"]
priority = "high"

[relay.users.alertmanager]
profile = "alerts"
password_hash = "{RELAY_HASH}"

[relay.users.limited]
profile = "alerts"
password_hash = "{RELAY_HASH}"
sender_domains = ["tools.example.test"]
recipient_domains = ["example.test"]

[routes.script]
profile = "alerts"
to = ["ops@example.test"]
subject_template = "{{{{ payload.check }}}} is {{{{ payload.state }}}}"
text_template = "Check {{{{ payload.check }}}} on {{{{ payload.host }}}}: {{{{ payload.state }}}}"
""")
    secrets.add(CLIENT_SECRET, secret_key, API_KEY, LIMITED_KEY, RELAY_PASSWORD, CALLBACK_SECRET)
    base = redis_server.rsplit("/", 1)[0]
    values = {
        "broker_url": f"{base}/0",
        "redis_url": f"{base}/1",
        "database_url": database_url,
        "profiles_file": str(profiles),
        "secret_key": secret_key,
        "retry_base_seconds": "0.2",
        "retry_max_seconds": "0.5",
        "retry_max_attempts": "4",
        "broker_max_countdown_seconds": "2",
        "visibility_timeout_seconds": "8",
        # Short, so that a hung task ends within a test, but not so short that a pool
        # child's start on a busy machine (building its runtime) runs into them.
        "task_soft_time_limit_seconds": "5",
        "task_time_limit_seconds": "6",
        "send_lease_seconds": "4",
        "requeue_grace_seconds": "1",
        "sweep_interval_seconds": "1",
        "profiles_check_seconds": "0.2",
        "relay_tls_cert_file": str(tls.cert_pem),
        "relay_tls_key_file": str(tls.key_pem),
        "relay_lockout_failures": "3",
        "smtp_noop_after_seconds": "0.5",
        # Off here, so that each test counts its own token requests and connections;
        # tests/tasks/test_preflight.py turns it on.
        "preflight": "false",
        "callback_secret": CALLBACK_SECRET,
        "callback_retry_base_seconds": "0.2",
        "callback_retry_max_seconds": "0.5",
        # The test receivers listen on 127.0.0.1: a network a callback may reach only if listed.
        "callback_allowed": "http://127.0.0.0/8",
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILPIPE_")}
    env.update({f"MAILPIPE_{k.upper()}": v for k, v in values.items()})
    env["MAILPIPE_API_KEYS"] = json.dumps(API_KEYS)
    env["PIPELINE_SECRET"] = CLIENT_SECRET
    os.environ["PIPELINE_SECRET"] = CLIENT_SECRET
    settings = Settings(_env_file=None, api_keys=API_KEYS, **values)  # type: ignore[arg-type]
    runtime = build_runtime(settings)  # publishes to this test's broker
    logs = tmp_path / "logs"
    logs.mkdir()
    pipe = Pipeline(runtime, server, idp, graph, env, logs, forkserver)
    yield pipe
    # Killed, not stopped: a warm shutdown took seconds per test, and the tests of how a
    # worker stops stop theirs themselves. A worker's pool children die with it (its group).
    for worker in pipe.workers:
        if worker.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(worker.pid, signal.SIGKILL)
    for worker in pipe.workers:
        worker.wait(15)
    runtime.close()
    os.environ.pop("PIPELINE_SECRET", None)
    secrets.assert_absent(pipe.worker_logs())
