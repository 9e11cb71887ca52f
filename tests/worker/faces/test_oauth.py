"""`mailpipe oauth authorize | status` as a user runs them, against Microsoft's login endpoints."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.browser import redirect_of, sign_in
from tests.fakes.login import CLIENT_ID, FakeLogin
from tests.fakes.smtp_server import FakeSmtpServer, ServerFactory
from tests.fakes.smtp_tls import TlsFiles
from tests.support import fresh_database

MAILPIPE = str(Path(sys.executable).parent / "mailpipe")


@pytest.fixture
def smtp(make_server: ServerFactory, login: FakeLogin) -> FakeSmtpServer:
    return make_server(token_ok=lambda user, token: token in login.idp.issued_access_tokens)


@pytest.fixture
def env(
    tmp_path: Path,
    login: FakeLogin,
    smtp: FakeSmtpServer,
    tls: TlsFiles,
    redis_url: str,
    secret_key: str,
) -> dict[str, str]:
    profiles = tmp_path / "profiles.toml"
    profiles.write_text(f"""
[profiles.delegated]
provider = "microsoft365"
tenant = "contoso.onmicrosoft.com"
host = "{smtp.host}"
port = {smtp.port}
security = "starttls"
ca_file = "{tls.ca_pem}"
from_email = "oncall@example.test"
auth = "oauth"
grant = "refresh_token"
client_id = "{CLIENT_ID}"
token_url = "{login.url("token")}"
authorize_url = "{login.url("authorize")}"
device_authorization_url = "{login.url("devicecode")}"
token_ca_file = "{tls.ca_pem}"

[profiles.app]
host = "127.0.0.1"
from_email = "alerts@example.test"
auth = "password"
password = "not-a-delegated-profile"
""")
    login.idp.secrets.add(secret_key, "not-a-delegated-profile")
    return {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "MAILPIPE_PROFILES_FILE": str(profiles),
        "MAILPIPE_DATABASE_URL": fresh_database("sqlite", tmp_path),
        "MAILPIPE_REDIS_URL": redis_url,
        "MAILPIPE_SECRET_KEY": secret_key,
    }


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MAILPIPE, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.fixture
def authorize(env: dict[str, str]) -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(10)
        for pipe in (process.stdin, process.stdout):
            if pipe is not None and not pipe.closed:
                pipe.close()


def start(
    env: dict[str, str], started: list[subprocess.Popen[str]], *args: str
) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [MAILPIPE, "oauth", "authorize", "delegated", *args], env=env, text=True,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    started.append(process)
    return process


def read_until(process: subprocess.Popen[str], marker: str) -> list[str]:
    """Lines the command printed, up to and including the first one containing ``marker``."""
    assert process.stdout is not None
    lines: list[str] = []
    while line := process.stdout.readline():
        lines.append(line.rstrip("\n"))
        if marker in line:
            return lines
    raise AssertionError(f"{marker!r} never printed:\n" + "\n".join(lines))


def finish(process: subprocess.Popen[str]) -> tuple[int, str]:
    output, _ = process.communicate(timeout=60)
    return process.returncode, output


def assert_no_token_material(login: FakeLogin, *outputs: str) -> None:
    text = "\n".join(outputs)
    issued = login.idp.issued_refresh_tokens + login.idp.issued_access_tokens
    assert issued
    assert [t for t in issued if t in text] == []
    assert "code=" not in text


def test_before_signing_in_the_profile_says_how_to_get_a_refresh_token(
    env: dict[str, str],
) -> None:
    status = run(env, "oauth", "status", "delegated")
    assert status.returncode == 1
    assert (
        status.stdout == "delegated: no refresh token yet: run mailpipe oauth authorize delegated\n"
    )
    refresh = run(env, "tokens", "refresh", "delegated")
    assert refresh.returncode == 1
    assert "no refresh token yet — sign in once with: mailpipe oauth authorize delegated" in (
        refresh.stderr
    )


def test_signing_in_in_a_browser_stores_the_refresh_token_and_checks_the_profile(
    env: dict[str, str],
    login: FakeLogin,
    smtp: FakeSmtpServer,
    tls: TlsFiles,
    authorize: list[subprocess.Popen[str]],
) -> None:
    process = start(env, authorize)
    printed = read_until(process, "Waiting for the redirect")
    url = next(line.strip() for line in printed if line.strip().startswith("https://"))
    status, page = sign_in(url, tls.ca_pem)  # the browser: sign in, then back to mailpipe
    assert (status, "mailpipe received the sign-in" in page) == (200, True)
    code, output = finish(process)
    assert code == 0, output
    assert "signed in: the refresh token of profile delegated is stored (encrypted)" in output
    checked = [line.split()[:2] for line in output.splitlines()[-4:]]
    assert checked == [["token", "ok"], ["connect", "ok"], ["ehlo", "ok"], ["auth", "ok"]]
    (sent,) = login.authorize_requests
    assert sent["scope"] == "https://outlook.office.com/SMTP.Send offline_access"
    assert sent["redirect_uri"].startswith("http://localhost:")
    assert sent["code_challenge_method"] == "S256"
    # The check refreshed once with the stored token, which rotated: the newest is kept.
    assert [r.form["grant_type"] for r in login.idp.requests] == [
        "authorization_code",
        "refresh_token",
    ]
    status_now = run(env, "oauth", "status", "delegated")
    assert status_now.returncode == 0
    assert "signed in with mailpipe oauth authorize" in status_now.stdout
    assert "last rotated" in status_now.stdout
    database = Path(env["MAILPIPE_DATABASE_URL"].removeprefix("sqlite:///")).read_bytes()
    assert login.idp.issued_refresh_tokens[-1].encode() not in database  # encrypted at rest
    assert_no_token_material(login, printed_text := "\n".join(printed), output, status_now.stdout)
    assert printed_text


def test_the_device_code_flow_prints_the_code_and_waits_for_approval(
    env: dict[str, str], login: FakeLogin, authorize: list[subprocess.Popen[str]]
) -> None:
    login.interval = 1
    login.device_answers.extend(["pending", "pending"])
    process = start(env, authorize, "--device")
    code, output = finish(process)
    assert code == 0, output
    assert "open the page https://microsoft.com/devicelogin and enter the code" in output
    assert "signed in: the refresh token of profile delegated is stored (encrypted)" in output
    polls = [r.form["grant_type"] for r in login.idp.requests]
    assert polls[:3] == ["urn:ietf:params:oauth:grant-type:device_code"] * 3
    assert login.device_requests[0]["scope"] == (
        "https://outlook.office.com/SMTP.Send offline_access"
    )
    assert_no_token_material(login, output)


def test_a_declined_device_sign_in_is_one_line_and_stores_nothing(
    env: dict[str, str], login: FakeLogin, authorize: list[subprocess.Popen[str]]
) -> None:
    login.interval = 1
    login.device_answers.extend(["decline"])
    code, output = finish(start(env, authorize, "--device"))
    assert code == 1
    assert output.splitlines()[-1] == (
        "mailpipe: error: profile 'delegated': the sign-in was declined"
    )
    assert run(env, "oauth", "status", "delegated").returncode == 1


def test_pasting_the_redirected_url_back_signs_in_on_another_machine(
    env: dict[str, str],
    login: FakeLogin,
    tls: TlsFiles,
    authorize: list[subprocess.Popen[str]],
) -> None:
    process = start(env, authorize, "--paste", "--port", "8765")
    printed = read_until(process, "copy that whole address")
    url = next(line.strip() for line in printed if line.strip().startswith("https://"))
    back = redirect_of(url, tls.ca_pem)  # what the other machine's address bar shows
    assert back.startswith("http://localhost:8765/?")
    assert process.stdin is not None
    process.stdin.write(back + "\n")
    process.stdin.flush()
    code, output = finish(process)
    assert code == 0, output
    assert "signed in:" in output


def test_a_pasted_url_of_another_sign_in_is_refused_by_its_state(
    env: dict[str, str],
    login: FakeLogin,
    tls: TlsFiles,
    authorize: list[subprocess.Popen[str]],
) -> None:
    earlier = start(env, authorize, "--paste")
    url = next(
        line.strip()
        for line in read_until(earlier, "copy that whole address")
        if line.strip().startswith("https://")
    )
    earlier.kill()
    process = start(env, authorize, "--paste")
    read_until(process, "copy that whole address")
    assert process.stdin is not None
    process.stdin.write(redirect_of(url, tls.ca_pem) + "\n")
    process.stdin.flush()
    code, output = finish(process)
    assert code == 1
    # After the prompt, on its line: the one line of the error.
    assert output.splitlines()[-1].endswith(
        "mailpipe: error: profile 'delegated': the redirect's state does not match this "
        "sign-in: not the URL of this attempt — run mailpipe oauth authorize again and use "
        "the URL it prints"
    )
    assert [r.form["grant_type"] for r in login.idp.requests] == []  # no code was redeemed


def test_a_profile_that_is_not_delegated_cannot_sign_in(env: dict[str, str]) -> None:
    result = run(env, "oauth", "authorize", "app")
    assert result.returncode == 1
    assert result.stderr == (
        "mailpipe: error: profile app uses a password: only delegated profiles "
        '(grant = "refresh_token") sign in for a refresh token\n'
    )


def test_headless_chromium_signs_in_and_lands_on_mailpipes_page(
    env: dict[str, str], login: FakeLogin, authorize: list[subprocess.Popen[str]], tmp_path: Path
) -> None:
    """A real browser: it follows Microsoft's 302 to the loopback redirect as users' do."""
    chromium = shutil.which("chromium")
    assert chromium, "chromium missing: `make tools` installs Debian's chromium"
    process = start(env, authorize)
    printed = read_until(process, "Waiting for the redirect")
    url = next(line.strip() for line in printed if line.strip().startswith("https://"))
    page = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         f"--user-data-dir={tmp_path / 'chromium'}",
         # The fake Microsoft's certificate is from the test CA, which chromium does not know.
         "--ignore-certificate-errors", "--dump-dom", url],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert "mailpipe received the sign-in" in page.stdout, page.stderr[-2000:]
    code, output = finish(process)
    assert code == 0, output
    assert "signed in: the refresh token of profile delegated is stored (encrypted)" in output
    assert login.authorize_requests[0]["code_challenge_method"] == "S256"
