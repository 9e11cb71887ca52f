"""`mailpipe sandbox`: the local token endpoint and SMTP server behind `make run`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.support import free_port, fresh_database

MAILPIPE = str(Path(sys.executable).parent / "mailpipe")


def test_a_profile_check_sends_through_the_sandbox(tmp_path: Path, redis_url: str) -> None:
    directory, outbox = tmp_path / "sandbox", tmp_path / "outbox"
    with (tmp_path / "sandbox.log").open("wb") as log:
        sandbox = subprocess.Popen(
            [MAILPIPE, "sandbox", "--dir", str(directory), "--outbox", str(outbox),
             "--token-port", str(free_port()), "--smtp-port", str(free_port())],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while not (directory / "profiles.toml").exists():
            assert time.monotonic() < deadline, (tmp_path / "sandbox.log").read_text()
            time.sleep(0.05)
        time.sleep(0.3)
        env = {
            **os.environ,
            "MAILPIPE_PROFILES_FILE": str(directory / "profiles.toml"),
            "MAILPIPE_REDIS_URL": redis_url,
            "MAILPIPE_SECRET_KEY": "bxRHaM7D9dPRE8vu3Bbav7Z4S7kBrBQoRqYi8oUu6Rk=",
            "MAILPIPE_DATABASE_URL": fresh_database("sqlite", tmp_path),
        }
        check = subprocess.run(
            [MAILPIPE, "profiles", "check", "sandbox", "--send-to", "oncall@example.test"],
            env=env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert check.returncode == 0, check.stdout + check.stderr
        assert [line.split()[:2] for line in check.stdout.splitlines()] == [
            ["token", "ok"],
            ["connect", "ok"],
            ["ehlo", "ok"],
            ["auth", "ok"],
            ["send", "ok"],
        ]
        (eml,) = outbox.glob("*.eml")
        assert b"Subject: mailpipe test message from profile sandbox" in eml.read_bytes()
    finally:
        sandbox.send_signal(signal.SIGTERM)
        sandbox.wait(10)
