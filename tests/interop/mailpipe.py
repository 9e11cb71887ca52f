"""mailpipe in front of a real server: a profiles file for it, a runtime, real Celery workers.

Four profiles send as four senders through the same server, one per way to log in:
XOAUTH2 with its initial response, XOAUTH2 in two steps (a 334 challenge first), OAUTHBEARER,
and a password (PLAIN). The OAuth ones get client-credentials tokens from the test token
endpoint, which the server checks there by introspection.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.fakes.idp import FakeIdP
from tests.interop.daemons import REPO
from tests.support import fresh_database
from worker.runtime import Runtime, build_runtime
from worker.settings import Settings
from worker.store import Job

CLIENT_SECRET = "interop-client-secret-value"
PASSWORD = "interop-password-value"
PASSWORD_USER = "password@example.test"
# The worker as the Procfile runs it: the prefork pool, two processes.
WORKER_PROCESSES = 2


@dataclass(frozen=True)
class LoginWay:
    """One profile: its name, the user it logs in as, and how."""

    name: str
    user: str
    lines: str  # its own lines of the profiles file
    client_id: str | None = None  # OAuth: the client its tokens are issued to


PROFILES = (
    LoginWay("xoauth2", "xoauth2@example.test", 'sasl = "xoauth2"', "interop-xoauth2"),
    LoginWay("xoauth2-two-step", "two-step@example.test",
             'sasl = "xoauth2"\nsasl_initial_response = false', "interop-two-step"),
    LoginWay("oauthbearer", "oauthbearer@example.test", 'sasl = "oauthbearer"',
             "interop-oauthbearer"),
    LoginWay("password", PASSWORD_USER,
             f'auth = "password"\nusername = "{PASSWORD_USER}"\npassword_env = "INTEROP_PASSWORD"'),
)  # fmt: skip


def profiles_file(
    path: Path, *, port: int, ca_file: Path, idp: FakeIdP, extra_lines: str = ""
) -> Path:
    """Every profile of PROFILES against the server at 127.0.0.1:port (STARTTLS).

    ``extra_lines`` go into every profile's table (``pipeline_messages = true``). The
    token endpoint learns which user each OAuth client acts as, for introspection."""
    tables = []
    for way in PROFILES:
        oauth = ""
        if way.client_id is not None:
            oauth = (
                f'auth = "oauth"\ngrant = "client_credentials"\nclient_id = "{way.client_id}"\n'
                f'client_secret_env = "INTEROP_CLIENT_SECRET"\ntoken_url = "{idp.url}"\n'
                f'allow_insecure_token_url = true\nscope = "smtp.send"\n'
            )
            idp.subjects[way.client_id] = way.user
        tables.append(
            f'[profiles.{way.name}]\nhost = "127.0.0.1"\nport = {port}\nsecurity = "starttls"\n'
            f'ca_file = "{ca_file}"\nfrom_email = "{way.user}"\n{way.lines}\n{oauth}'
            f"{extra_lines}\n"
        )
    path.write_text("\n".join(tables))
    return path


@dataclass
class Mailpipe:
    runtime: Runtime
    env: dict[str, str]
    logs: Path
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start_worker(self) -> None:
        """A real worker, as `celery -A worker worker` runs in production."""
        with (self.logs / f"worker-{len(self.workers)}.log").open("wb") as log:
            self.workers.append(subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "worker", "worker", "-P", "prefork",
                 "-c", str(WORKER_PROCESSES), "-Q", "mail.critical,mail",
                 "-n", f"interop{len(self.workers)}@%h", "--without-gossip",
                 "--without-mingle", "--without-heartbeat", "-l", "INFO"],
                env=self.env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            ))  # fmt: skip

    def job(self, job_id: str) -> Job:
        job = self.runtime.store.get_job(job_id)
        assert job is not None, f"job {job_id} is not in the store"
        return job

    def wait_final(self, job_ids: list[str], seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while True:
            pending = [j for j in job_ids if self.job(j).status not in ("delivered", "failed")]
            if not pending:
                return
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{len(pending)} of {len(job_ids)} jobs not final after {seconds}s; "
                    f"worker logs in {self.logs}"
                )
            time.sleep(0.1)

    def worker_logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.logs.glob("*.log")))

    def stop(self) -> None:
        for worker in self.workers:
            if worker.poll() is None:
                worker.terminate()  # a warm shutdown: its pool processes close their SMTP sessions
        for worker in self.workers:
            try:
                worker.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait(5)
        self.runtime.close()


def start_mailpipe(
    directory: Path, *, redis_server: str, secret_key: str, profiles: Path
) -> Mailpipe:
    """A runtime (the producer side) and the environment its workers get; no worker yet."""
    base = redis_server.rsplit("/", 1)[0]
    values = {
        "broker_url": f"{base}/0",
        "redis_url": f"{base}/1",
        "database_url": fresh_database("sqlite", directory),
        "profiles_file": str(profiles),
        "secret_key": secret_key,
        # A retry, if any, comes at once: the test then sees its duplicate, not a timeout.
        "retry_base_seconds": "0.2",
        "retry_max_seconds": "0.5",
        "retry_max_attempts": "4",
        "broker_max_countdown_seconds": "2",
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILPIPE_")}
    env.update({f"MAILPIPE_{k.upper()}": v for k, v in values.items()})
    env["INTEROP_CLIENT_SECRET"] = CLIENT_SECRET
    env["INTEROP_PASSWORD"] = PASSWORD
    settings = Settings(_env_file=None, **values)  # type: ignore[arg-type]
    logs = directory / "logs"
    logs.mkdir()
    return Mailpipe(build_runtime(settings), env, logs)
