"""The image's commands, run as compose names them on a private Redis and SQLite, then SIGTERM."""

from __future__ import annotations

import base64
import importlib.util
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.compose_file import compose_command
from tests.deploy.dockerfile import only, stages
from tests.deploy.files import HEALTHCHECK
from tests.deploy.processes import (
    Local,
    Running,
    as_run_here,
    http_get,
    option_value,
    wait_until_serving,
)
from tests.fakes.smtp_tls import TlsFiles
from tests.leaks import SecretRegistry
from tests.support import free_port, fresh_database

PROFILES = """\
# Sends nowhere: a loopback port nothing listens on. Nothing is sent in these tests.
[profiles.local]
host = "127.0.0.1"
port = {port}
security = "starttls"
from_email = "alerts@example.test"
auth = "password"
username = "alerts@example.test"
password_env = "LOCAL_SMTP_PASSWORD"

[routes.oncall]
profile = "local"
to = ["oncall@example.test"]

[relay.users.tool]
password_hash = "$argon2id$CHANGE_ME"
profile = "local"
"""


@pytest.fixture
def local(
    tmp_path: Path, redis_url: str, secret_key: str, tls: TlsFiles, secrets: SecretRegistry
) -> Local:
    profiles = tmp_path / "profiles.toml"
    profiles.write_text(PROFILES.format(port=free_port()))
    found = Local(
        directory=tmp_path,
        redis_url=redis_url,
        database_url=fresh_database("sqlite", tmp_path),
        profiles=profiles,
        secret_key=secret_key,
        flower_auth=f"admin:{base64.b32encode(os.urandom(10)).decode()}",
        api_key=base64.urlsafe_b64encode(os.urandom(24)).decode(),
        tls=tls,
    )
    secrets.add(found.secret_key, found.flower_auth.split(":", 1)[1], found.api_key)
    return found


@pytest.fixture
def start(local: Local) -> Iterator[Any]:
    started: list[Running] = []

    def start_service(name: str, argv: list[str] | None = None) -> Running:
        command = as_run_here(argv or compose_command(name), local.directory)
        running = Running(command, local.environment(name), local.directory)
        started.append(running)
        return running

    yield start_service
    for running in started:
        running.kill()


def test_db_upgrade_creates_the_schema_the_others_wait_for(local: Local, start: Any) -> None:
    local.database_url = f"sqlite:///{local.directory / 'empty.db'}"
    upgrade = start("db-upgrade")
    assert upgrade.process.wait(60) == 0, upgrade.text()
    assert "created the database schema" in upgrade.text()
    again = start("db-upgrade")
    assert again.process.wait(60) == 0, again.text()
    assert "up to date" in again.text()


def test_the_image_default_command_runs_a_worker_that_answers_ping(start: Any) -> None:
    worker = start("worker", only(stages()[-1], "CMD").exec_form())
    worker.wait_for(r"celery@\S+ ready\.")
    check = worker.healthcheck("worker")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "pong" in check.stdout
    assert worker.stop() == 0, worker.text()[-3000:]


def test_beat_starts_writes_its_schedule_and_stops(start: Any, local: Local) -> None:
    beat = start("beat")
    beat.wait_for(r"beat: Starting")
    schedule = Path(option_value(beat.argv, "--schedule"))
    deadline = time.monotonic() + 20
    while beat.healthcheck("beat").returncode != 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    check = beat.healthcheck("beat")
    assert check.returncode == 0, check.stdout + check.stderr + beat.text()[-2000:]
    assert str(schedule) in check.stdout
    # A schedule file not written for longer than beat ever waits reads as a hung beat.
    for path in [schedule, *schedule.parent.glob(schedule.name + ".*")]:
        if path.exists():
            os.utime(path, (time.time() - 3600, time.time() - 3600))
    stale = beat.healthcheck("beat")
    assert stale.returncode == 1, stale.stdout
    # 3600 s, or a little more if the check started a second or more after the utime.
    written = re.search(r"last written (\d+) s ago", stale.stderr)
    assert written and 3600 <= int(written[1]) < 3700, stale.stderr
    assert beat.stop() == 0, beat.text()[-3000:]


def test_flower_asks_for_the_password_it_read_from_its_environment(
    start: Any, local: Local
) -> None:
    flower = start("flower")
    port = int(option_value(flower.argv, "--port"))
    wait_until_serving(flower, port)
    user_password = local.flower_auth
    assert user_password not in " ".join(flower.argv)
    cmdline = Path(f"/proc/{flower.process.pid}/cmdline").read_bytes().decode()
    assert user_password.split(":", 1)[1] not in cmdline
    auth = {"Authorization": "Basic " + base64.b64encode(user_password.encode()).decode()}
    assert http_get(port, "/", auth) == 200
    assert http_get(port, "/") == 401
    check = flower.healthcheck("flower")
    assert check.returncode == 0, check.stdout + check.stderr
    assert flower.stop() == 0, flower.text()[-3000:]


def test_the_http_intake_is_ready_and_keeps_its_keys(start: Any, local: Local) -> None:
    api = start("api")
    port = int(option_value(api.argv, "--port"))
    wait_until_serving(api, port)
    assert http_get(port, "/readyz") == 200  # the readiness probe: no key
    assert http_get(port, "/healthz") == 200  # the liveness probe
    assert http_get(port, "/v1/notifications/0") == 401
    bearer = {"Authorization": f"Bearer {local.api_key}"}
    assert http_get(port, "/v1/notifications/0", bearer) == 404
    check = api.healthcheck("api")
    assert check.returncode == 0, check.stdout + check.stderr
    # uvicorn shuts down gracefully on SIGTERM, then raises the signal again so that whoever
    # started it sees why it ended.
    assert api.stop() in (0, -signal.SIGTERM), api.text()[-3000:]


def test_the_relay_greets_with_220_and_stops(start: Any) -> None:
    relay = start("relay")
    port = int(option_value(relay.argv, "--port"))
    wait_until_serving(relay, port)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        greeting = sock.makefile("rb").readline()
        sock.sendall(b"QUIT\r\n")
    assert greeting.startswith(b"220"), greeting
    check = relay.healthcheck("relay")
    assert check.returncode == 0, check.stdout + check.stderr
    assert relay.stop() == 0, relay.text()[-3000:]


def test_the_healthcheck_finds_no_process_where_none_runs() -> None:
    result = subprocess.run([sys.executable, str(HEALTHCHECK), "relay", "--pid", str(os.getpid())],
                            capture_output=True, text=True, timeout=30, check=False)  # fmt: skip
    assert result.returncode == 1
    assert "not relay" in result.stderr


def test_the_healthcheck_reads_celerys_process_titles() -> None:
    # Where setproctitle is installed, Celery's processes carry a title, cut to the
    # length of the command line it replaced.
    spec = importlib.util.spec_from_file_location("healthcheck", HEALTHCHECK)
    assert spec is not None and spec.loader is not None
    healthcheck = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(healthcheck)
    worker = ["[celeryd: w1@db-01:MainProcess] -active- (-A worker worker -Q mail.critical,mail)"]
    assert healthcheck.untitled(worker) == [
        "celery", "-A", "worker", "worker", "-Q", "mail.critical,mail", "-n", "w1@db-01",
    ]  # fmt: skip
    assert healthcheck.role_of(healthcheck.untitled(worker)) == "worker"
    cut = ["[celery beat] -A worker beat --schedule /data/celerybeat-sch"]
    assert healthcheck.role_of(healthcheck.untitled(cut)) == "beat"
    plain = ["/opt/mailpipe/bin/celery", "-A", "worker", "beat"]
    assert healthcheck.untitled(plain) == plain
