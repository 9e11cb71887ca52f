"""Real clients through the relay, to an upstream that does not offer SMTPUTF8.

swaks, msmtp, curl, Nodemailer, Python's smtplib and Alertmanager's own email
notifier (Go, which asks for SMTPUTF8 whenever a server offers it) each send one
message; it must arrive at the upstream exactly once. SMTPUTF8 is asked of the
upstream only when an address or a header needs it, never because a client asked.
"""

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

CLIENTS = Path(__file__).parents[3] / "clients"
SENDER = "backup@tools.example.test"
TO = "oncall@example.test"


@pytest.fixture
def upstream_options() -> dict[str, object]:
    return {"smtputf8": False}


def installed(command: str) -> str:
    path = shutil.which(command)
    if path is None:
        pytest.fail(f"{command} is not installed: run `make test`, which installs it")
    return path


def run(*argv: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        argv, input=stdin, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def delivered_once(pipeline: Pipeline, subject: str) -> None:
    """One job, delivered, and one message at the upstream, sent without SMTPUTF8."""
    pipeline.wait_for(lambda: pipeline.runtime.store.status_counts() == {"delivered": 1}, 60)
    assert len(pipeline.server.messages) == 1
    received = pipeline.server.messages[0]
    assert received.rcpt_tos == [TO]
    assert received.message["Subject"] == subject
    assert "SMTPUTF8" not in received.mail_options


def message(subject: str) -> str:
    return f"From: <{SENDER}>\r\nTo: <{TO}>\r\nSubject: {subject}\r\n\r\npg_dump exited 1\r\n"


def test_swaks_sends_through_the_relay_with_starttls_and_auth(
    relay: Relay, pipeline: Pipeline
) -> None:
    pipeline.start_worker()
    result = run(
        installed("swaks"), "--server", f"127.0.0.1:{relay.port}", "--tls", "--auth", "PLAIN",
        "--auth-user", "alertmanager", "--auth-password", RELAY_PASSWORD,
        "--from", SENDER, "--to", TO,
        "--header", "Subject: nightly backup failed", "--body", "pg_dump exited 1",
    )  # fmt: skip
    assert "<~  250 2.0.0 OK queued as" in result.stdout
    delivered_once(pipeline, "nightly backup failed")


def test_msmtp(relay: Relay, pipeline: Pipeline) -> None:
    pipeline.start_worker()
    run(
        installed("msmtp"), "--host=127.0.0.1", f"--port={relay.port}", "--tls=on",
        "--tls-starttls=on", f"--tls-trust-file={relay.ca_file}", "--auth=plain",
        "--user=alertmanager", f"--passwordeval=echo {RELAY_PASSWORD}", f"--from={SENDER}", TO,
        stdin=message("sent by msmtp"),
    )  # fmt: skip
    delivered_once(pipeline, "sent by msmtp")


def test_curl(relay: Relay, pipeline: Pipeline, tmp_path: Path) -> None:
    pipeline.start_worker()
    mail = tmp_path / "mail.txt"
    mail.write_text(message("sent by curl"))
    run(
        installed("curl"), "--silent", "--show-error", "--url", f"smtp://127.0.0.1:{relay.port}",
        "--ssl-reqd", "--cacert", relay.ca_file, "--user", f"alertmanager:{RELAY_PASSWORD}",
        "--mail-from", SENDER, "--mail-rcpt", TO, "--upload-file", str(mail),
    )  # fmt: skip
    delivered_once(pipeline, "sent by curl")


def test_nodemailer(relay: Relay, pipeline: Pipeline) -> None:
    if not (CLIENTS / "node_modules" / "nodemailer").is_dir():
        pytest.fail("Nodemailer is not installed: run `make test`, which installs it")
    pipeline.start_worker()
    result = run(
        installed("node"), str(CLIENTS / "send.js"), str(relay.port), relay.ca_file,
        "alertmanager", RELAY_PASSWORD, SENDER, TO, "sent by Nodemailer",
    )  # fmt: skip
    assert result.stdout.startswith("250 2.0.0 OK queued as"), result.stdout
    delivered_once(pipeline, "sent by Nodemailer")


def test_smtplib_asking_for_smtputf8_with_ascii_only(relay: Relay, pipeline: Pipeline) -> None:
    pipeline.start_worker()
    with relay.client() as smtp:
        assert smtp.has_extn("smtputf8")  # the relay offers it; the upstream does not
        smtp.sendmail(SENDER, [TO], message("sent by smtplib"), mail_options=["SMTPUTF8"])
    delivered_once(pipeline, "sent by smtplib")


def test_a_message_that_needs_smtputf8_says_so_in_one_line(
    relay: Relay, pipeline: Pipeline
) -> None:
    # A raw UTF-8 header (RFC 6532) does need it: the upstream lacks it, so the job fails
    # permanently, saying why, rather than sending a header the upstream cannot carry.
    pipeline.start_worker()
    data = message("disque plein à 97 %").encode()
    with relay.client() as smtp:
        smtp.sendmail(SENDER, [TO], data, mail_options=["SMTPUTF8"])
    pipeline.wait_for(lambda: pipeline.runtime.store.status_counts() == {"failed": 1}, 60)
    assert pipeline.server.messages == []
    (attempt,) = pipeline.runtime.store.attempts(profile="alerts")
    assert "does not support SMTPUTF8" in attempt.text


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
    assert "SMTPUTF8" not in page.mail_options
    assert alertmanager.failures("email") == 0
    store = pipeline.runtime.store
    pipeline.wait_for(lambda: set(store.status_counts()) == {"delivered"}, 60)
    assert store.status_counts() == {"delivered": len(pipeline.server.messages)}
