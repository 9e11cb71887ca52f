"""`mailpipe send | status | attempts | db upgrade` as scripts run them, against a live worker."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from alembic.script import ScriptDirectory

from tests.pipeline import REPO, Pipeline
from worker.store import alembic_config

MAILPIPE = str(Path(sys.executable).parent / "mailpipe")


def run(pipeline: Pipeline, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MAILPIPE, *args], env=pipeline.env, cwd=REPO, capture_output=True, text=True,
        timeout=90, check=False,
    )  # fmt: skip


def test_send_wait_status_and_attempts(pipeline: Pipeline, tmp_path: Path) -> None:
    pipeline.start_worker()
    body = tmp_path / "body.txt"
    body.write_text("db-01 is down\n")
    sent = run(
        pipeline, "send", "--profile", "alerts", "--to", "oncall@example.test",
        "--cc", "lead@example.test", "--subject", "[P1] db-01 down", "--text-file", str(body),
        "--header", "X-Incident-Id: INC-7", "--priority", "high", "--wait", "30",
    )  # fmt: skip
    assert sent.returncode == 0, sent.stderr
    job_id, final = sent.stdout.splitlines()
    assert final.startswith("delivered: delivered at data: 250")

    status = run(pipeline, "status", job_id)
    assert status.returncode == 0
    assert (
        status.stdout.splitlines()[0] == f"job {job_id}: delivered (profile alerts, priority high)"
    )
    assert "attempt 1" in status.stdout
    as_json = json.loads(run(pipeline, "status", job_id, "--json").stdout)
    assert as_json["status"] == "delivered"
    assert as_json["attempts"][0]["token_source"] == "fresh"
    assert {r["address"] for r in as_json["attempts"][0]["recipients"]} == {
        "oncall@example.test",
        "lead@example.test",
    }
    rows = json.loads(
        run(pipeline, "attempts", "--profile", "alerts", "--since", "1h", "--json").stdout
    )
    assert [r["job_id"] for r in rows] == [job_id]
    assert json.loads(run(pipeline, "attempts", "--failed", "--json").stdout) == []


def test_send_exit_codes_for_failed_and_pending(pipeline: Pipeline) -> None:
    args = ["send", "--profile", "alerts", "--to", "oncall@example.test", "--subject", "s",
            "--text", "t"]  # fmt: skip
    pending = run(pipeline, *args, "--wait", "0.3")
    assert pending.returncode == 2, "no worker yet: still queued"
    assert pending.stdout.splitlines()[1] == "pending: queued after 0.3s"
    pipeline.server.fail_recipient("denied@example.test", "554 5.2.252 SendAsDenied; not allowed")
    pipeline.start_worker()
    denied = [a.replace("oncall@", "denied@") for a in args]
    failed = run(pipeline, *denied, "--wait", "30")
    assert failed.returncode == 1
    assert "SendAs" in failed.stdout


def test_bad_input_is_one_line_and_stores_nothing(pipeline: Pipeline) -> None:
    for args, message in [
        (["--profile", "nope", "--to", "a@example.test"], "unknown profile 'nope'"),
        (["--profile", "alerts", "--to", "not-an-address"], "to: 'not-an-address' is not an"),
        (["--profile", "alerts", "--to", "a@example.test", "--header", "X-A: 1\r\nBcc: x@y.z"],
         "line break"),
    ]:  # fmt: skip
        result = run(pipeline, "send", *args, "--subject", "s", "--text", "t")
        assert result.returncode == 1
        assert len(result.stderr.strip().splitlines()) == 1
        assert message in result.stderr
    assert pipeline.runtime.store.status_counts() == {}


def test_db_upgrade_is_idempotent(pipeline: Pipeline) -> None:
    result = run(pipeline, "db", "upgrade")
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert (result.returncode, result.stdout) == (
        0,
        f"database schema is up to date (revision {head})\n",
    )


def test_a_new_database_is_created_and_a_missing_one_is_named(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    path = tmp_path / "new.db"
    env = {**pipeline.env, "MAILPIPE_DATABASE_URL": f"sqlite:///{path}"}
    status = subprocess.run(
        [MAILPIPE, "status", "nope"], env=env, capture_output=True, text=True, check=False
    )
    assert (status.returncode, status.stderr) == (
        1,
        f"mailpipe: error: the database file {path} does not exist "
        f"(MAILPIPE_DATABASE_URL=sqlite:///{path}): set MAILPIPE_DATABASE_URL to the database "
        "mailpipe uses (`make run`'s settings: `. .sandbox/env`); only for a new one, "
        "`mailpipe db upgrade` creates it\n",
    )
    assert not path.exists(), "no empty database left behind"
    created = subprocess.run(
        [MAILPIPE, "db", "upgrade"], env=env, capture_output=True, text=True, check=False
    )
    assert created.stdout.startswith("created the database schema (revision ")


def test_a_malformed_database_url_is_one_line(pipeline: Pipeline) -> None:
    env = {**pipeline.env, "MAILPIPE_DATABASE_URL": "postgres ql://user:pw@host/db"}
    result = subprocess.run(
        [MAILPIPE, "status", "x"], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 1
    assert result.stderr.startswith("mailpipe: error: MAILPIPE_DATABASE_URL is not a database URL")
    assert result.stderr.count("\n") == 1 and "pw" not in result.stderr
