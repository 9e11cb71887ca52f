"""Real clients through the relay: swaks, and Alertmanager's own email notifier."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.alertmanager import Alertmanager, wait
from tests.pipeline import RELAY_PASSWORD, Pipeline
from tests.worker.faces.relay.conftest import Relay


def test_swaks_sends_through_the_relay_with_starttls_and_auth(
    relay: Relay, pipeline: Pipeline
) -> None:
    swaks = shutil.which("swaks")
    if swaks is None:
        pytest.fail("swaks is not installed: run `make test`, which installs it")
    pipeline.start_worker()
    result = subprocess.run(
        [swaks, "--server", f"127.0.0.1:{relay.port}", "--tls", "--auth", "PLAIN",
         "--auth-user", "alertmanager", "--auth-password", RELAY_PASSWORD,
         "--from", "backup@tools.example.test", "--to", "oncall@example.test",
         "--header", "Subject: nightly backup failed", "--body", "pg_dump exited 1"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "<~  250 2.0.0 OK queued as" in result.stdout
    pipeline.wait_for(lambda: len(pipeline.server.messages) == 1)
    assert pipeline.server.messages[0].message["Subject"] == "nightly backup failed"


@pytest.fixture
def alertmanager(tmp_path: Path, relay: Relay) -> Iterator[Alertmanager]:
    password = tmp_path / "relay-password"
    password.write_text(RELAY_PASSWORD)
    manager = Alertmanager(
        tmp_path,
        f"""
  - name: mailpipe
    email_configs:
      - to: oncall@example.test
        from: alertmanager@tools.example.test
        smarthost: 127.0.0.1:{relay.port}
        auth_username: alertmanager
        auth_password_file: {password}
        require_tls: true
        tls_config:
          ca_file: {relay.ca_file}
        send_resolved: true
""",
    )
    yield manager
    manager.stop()


def test_alertmanagers_email_notifier_pages_through_the_relay(
    alertmanager: Alertmanager, pipeline: Pipeline
) -> None:
    pipeline.start_worker()
    alertmanager.post(ends_at=datetime.now(UTC) + timedelta(minutes=10))

    wait(lambda: len(pipeline.server.messages) >= 1, 60, f"no page; see {alertmanager.log}")
    page = pipeline.server.messages[0]
    assert page.rcpt_tos == ["oncall@example.test"]
    assert page.message["Subject"].startswith("[FIRING:1] DiskFull")
    assert alertmanager.failures("email") == 0
