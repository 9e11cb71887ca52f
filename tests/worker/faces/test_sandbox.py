"""`mailpipe sandbox`: the local token endpoint and SMTP server behind `make run`."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet, MultiFernet

from tests.support import free_port, fresh_database
from worker.store import Database, DatabaseRefreshTokenStore

MAILPIPE = str(Path(sys.executable).parent / "mailpipe")
CHECK_STEPS = [["token", "ok"], ["connect", "ok"], ["ehlo", "ok"], ["auth", "ok"], ["send", "ok"]]


@dataclass(frozen=True)
class Sandbox:
    directory: Path
    outbox: Path
    token_port: int
    env: dict[str, str]
    started: list[subprocess.Popen[str]] = field(default_factory=list)

    def run(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [MAILPIPE, *args], env=self.env, input=stdin,
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip

    def start(self, *args: str) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [MAILPIPE, *args], env=self.env, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.started.append(process)
        return process


@pytest.fixture
def sandbox(tmp_path: Path, redis_url: str, secret_key: str) -> Iterator[Sandbox]:
    directory, outbox, token_port = tmp_path / "sandbox", tmp_path / "outbox", free_port()
    with (tmp_path / "sandbox.log").open("wb") as log:
        process = subprocess.Popen(
            [MAILPIPE, "sandbox", "--dir", str(directory), "--outbox", str(outbox),
             "--token-port", str(token_port), "--smtp-port", str(free_port())],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        # The file is written (whole) once both servers listen.
        while not (directory / "profiles.toml").exists():
            assert process.poll() is None, (tmp_path / "sandbox.log").read_text()
            assert time.monotonic() < deadline, (tmp_path / "sandbox.log").read_text()
            time.sleep(0.05)
        env = {
            **os.environ,
            "MAILPIPE_PROFILES_FILE": str(directory / "profiles.toml"),
            "MAILPIPE_REDIS_URL": redis_url,
            "MAILPIPE_BROKER_URL": redis_url,
            "MAILPIPE_SECRET_KEY": secret_key,
            "MAILPIPE_DATABASE_URL": fresh_database("sqlite", tmp_path),
        }
        running = Sandbox(directory, outbox, token_port, env)
        yield running
        for command in running.started:  # a test that failed half-way leaves its command
            if command.poll() is None:
                command.kill()
            command.communicate(timeout=10)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(10)


def _check_sends(sandbox: Sandbox, profile: str) -> None:
    check = sandbox.run("profiles", "check", profile, "--send-to", "oncall@example.test")
    assert check.returncode == 0, check.stdout + check.stderr
    assert [line.split()[:2] for line in check.stdout.splitlines()] == CHECK_STEPS
    (eml,) = sandbox.outbox.glob("*.eml")
    assert f"Subject: mailpipe test message from profile {profile}".encode() in eml.read_bytes()


def test_a_profile_check_sends_through_the_sandbox(sandbox: Sandbox) -> None:
    _check_sends(sandbox, "sandbox")


def test_the_sandbox_has_the_route_the_readme_uses(sandbox: Sandbox) -> None:
    listed = sandbox.run("profiles", "list")
    assert listed.returncode == 0, listed.stderr
    assert "route oncall: profile sandbox → oncall@example.test" in listed.stdout.splitlines()


def _read_until(process: subprocess.Popen[str], pattern: str) -> re.Match[str]:
    """The first line of the command's output that matches, with what it printed before."""
    assert process.stdout is not None
    seen = []
    for line in process.stdout:
        seen.append(line)
        if match := re.search(pattern, line):
            return match
    process.wait(10)
    pytest.fail(f"exit {process.returncode} before {pattern!r}:\n{''.join(seen)}")


def _finish(process: subprocess.Popen[str], stdin: str = "") -> str:
    rest, _ = process.communicate(stdin, timeout=120)
    assert process.returncode == 0, rest
    assert "signed in: the refresh token of profile sandbox-oncall is stored" in rest
    return rest


def test_oauth_authorize_in_a_browser_on_this_machine(sandbox: Sandbox) -> None:
    authorize = sandbox.start("oauth", "authorize", "sandbox-oncall")
    url = _read_until(authorize, r"(http://127\.0\.0\.1:\d+/authorize\?\S+)")[1]
    # What a browser does: the sandbox signs its user in and sends it back to mailpipe.
    page = httpx.get(url, follow_redirects=True, timeout=30)
    assert page.status_code == 200
    assert "mailpipe received the sign-in" in page.text
    _finish(authorize)
    _check_sends(sandbox, "sandbox-oncall")


def test_oauth_authorize_with_the_address_pasted_back(sandbox: Sandbox) -> None:
    authorize = sandbox.start("oauth", "authorize", "sandbox-oncall", "--paste")
    url = _read_until(authorize, r"(http://127\.0\.0\.1:\d+/authorize\?\S+)")[1]
    redirect = httpx.get(url, timeout=30)
    assert redirect.status_code == 302
    assert redirect.headers["location"].startswith("http://localhost:8400/?")
    _finish(authorize, redirect.headers["location"] + "\n")
    status = sandbox.run("oauth", "status", "sandbox-oncall")
    assert status.stdout.startswith("sandbox-oncall: refresh token stored (encrypted): signed in")


def test_oauth_authorize_with_a_device_code(sandbox: Sandbox) -> None:
    authorize = sandbox.start("oauth", "authorize", "sandbox-oncall", "--device")
    said = _read_until(authorize, r"open (http://\S+/device) and enter the code (\S+)")
    page, code = said.groups()
    # Lower case and without the dash, as people type it.
    approved = httpx.post(page, data={"user_code": code.replace("-", "").lower()}, timeout=30)
    assert "Signed in as oncall@sandbox.example" in approved.text
    _finish(authorize)
    _check_sends(sandbox, "sandbox-oncall")


def test_the_delegated_refresh_token_rotates_and_is_kept(sandbox: Sandbox) -> None:
    authorize = sandbox.start("oauth", "authorize", "sandbox-oncall", "--paste")
    url = _read_until(authorize, r"(http://127\.0\.0\.1:\d+/authorize\?\S+)")[1]
    _finish(authorize, httpx.get(url, timeout=30).headers["location"] + "\n")
    seen = [_stored_refresh_token(sandbox)]
    for _ in range(2):  # each refresh answers with a new refresh token, which must be kept
        refreshed = sandbox.run("tokens", "refresh", "sandbox-oncall")
        assert refreshed.returncode == 0, refreshed.stderr
        assert "new token from the token endpoint" in refreshed.stdout
        seen.append(_stored_refresh_token(sandbox))
    assert len(set(seen)) == 3, "rotated on every refresh"


def _stored_refresh_token(sandbox: Sandbox) -> str:
    database = Database(sandbox.env["MAILPIPE_DATABASE_URL"])
    try:
        store = DatabaseRefreshTokenStore(
            database, MultiFernet([Fernet(sandbox.env["MAILPIPE_SECRET_KEY"])])
        )
        written = store.written("sandbox-oncall")
        assert written is not None
        token = store.load("sandbox-oncall", written[0])
        assert token is not None
        return token
    finally:
        database.dispose()


def test_a_delegated_profile_without_sign_in_says_how_to_sign_in(sandbox: Sandbox) -> None:
    status = sandbox.run("oauth", "status", "sandbox-oncall")
    assert status.returncode == 1
    assert status.stdout == (
        "sandbox-oncall: no refresh token yet: run mailpipe oauth authorize sandbox-oncall\n"
    )
