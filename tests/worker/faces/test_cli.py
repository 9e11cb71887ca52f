"""The `mailpipe` command as a user runs it: a real process, real Redis, a real token endpoint."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import get_origin

import pytest

from tests.fakes.idp import FakeIdP, reply
from tests.fakes.idp_bodies import CORRELATION_ID, MS_EXPIRED_SECRET, TRACE_ID
from tests.leaks import SecretRegistry
from tests.support import free_port, fresh_database
from worker.settings import Settings
from worker.store import Store

MAILPIPE = str(Path(sys.executable).parent / "mailpipe")
TWO_KEYS_NAMED_A = json.dumps([{"name": "a", "sha256": c * 64} for c in "01"])
SECRET = "cli-client-secret-value"


@pytest.fixture
def env(tmp_path: Path, idp: FakeIdP, redis_url: str, secret_key: str) -> dict[str, str]:
    profiles = tmp_path / "profiles.toml"
    profiles.write_text(f"""
[profiles.app]
host = "127.0.0.1"
from_email = "alerts@example.test"
auth = "oauth"
grant = "client_credentials"
token_url = "{idp.url}"
allow_insecure_token_url = true
scope = "smtp.send"
client_id = "mailpipe"
client_secret_env = "APP_SECRET"

[profiles.relay]
host = "smtp.example.net"
port = 465
security = "tls"
from_email = "noreply@example.net"
auth = "password"
password = "relay-password-value"
""")
    idp.secrets.add(SECRET, "relay-password-value", secret_key)
    return {
        **os.environ,
        "MAILPIPE_PROFILES_FILE": str(profiles),
        "MAILPIPE_DATABASE_URL": fresh_database("sqlite", tmp_path),
        "MAILPIPE_REDIS_URL": redis_url,
        "MAILPIPE_SECRET_KEY": secret_key,
        "APP_SECRET": SECRET,
    }


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MAILPIPE, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_profiles_list(env: dict[str, str], idp: FakeIdP) -> None:
    result = run(env, "profiles", "list")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["NAME", "PROVIDER", "AUTH", "SERVER", "FROM"]
    assert lines[1].split() == [
        "app",
        "generic",
        "oauth/client_credentials",
        "127.0.0.1:587",
        "starttls",
        "alerts@example.test",
    ]
    assert lines[2].split()[:3] == ["relay", "generic", "password"]


def test_tokens_refresh_says_where_the_token_came_from_never_the_token(
    env: dict[str, str], idp: FakeIdP, secrets: SecretRegistry
) -> None:
    result = run(env, "tokens", "refresh")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("app: new token from the token endpoint, expires ")
    assert "(in 60 min)" in result.stdout
    assert "relay" not in result.stdout, "password profiles have no token"
    assert len(idp.requests) == 1
    secrets.assert_absent(result.stdout, result.stderr)


def test_tokens_refresh_failure_prints_the_hint_and_exits_1(
    env: dict[str, str], idp: FakeIdP, secrets: SecretRegistry
) -> None:
    idp.then(reply(*MS_EXPIRED_SECRET))
    result = run(env, "tokens", "refresh", "app")
    assert result.returncode == 1
    assert result.stderr.splitlines()[0] == (
        "app: failed: profile 'app': token endpoint refused: HTTP 401 invalid_client: "
        "AADSTS7000222: The provided client secret keys for app "
        "'11111111-1111-1111-1111-111111111111' are expired. Visit the Azure portal to create "
        "new keys for your app. — the client secret has expired: create a new one under "
        "Certificates & secrets and update the profile"
    )
    assert result.stderr.splitlines()[1] == (
        f"  trace_id={TRACE_ID} correlation_id={CORRELATION_ID} (quote these to the provider)"
    )
    secrets.assert_absent(result.stdout, result.stderr)


def test_unknown_profile_and_broken_files_are_one_line_errors(
    env: dict[str, str], tmp_path: Path
) -> None:
    result = run(env, "tokens", "refresh", "nope")
    assert result.returncode == 1
    assert result.stderr == "mailpipe: error: unknown profile 'nope' (profiles: app, relay)\n"

    broken = tmp_path / "broken.toml"
    broken.write_text('[profiles.x]\nfrom_email = "a@b.test"\nauth = "password"\n')
    result = run({**env, "MAILPIPE_PROFILES_FILE": str(broken)}, "profiles", "list")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"mailpipe: error: {broken}: profile 'x', field 'host': missing (required for "
        "provider 'generic')",
        f"mailpipe: error: {broken}: profile 'x', field 'password': missing (set password, "
        "password_env or password_file)",
    ]


def test_missing_secret_key_says_how_to_make_one(env: dict[str, str]) -> None:
    result = run({**env, "MAILPIPE_SECRET_KEY": ""}, "tokens", "refresh")
    assert result.returncode == 1
    assert (
        "MAILPIPE_SECRET_KEY is not set: generate one with `mailpipe secret-key`" in result.stderr
    )
    key = run(env, "secret-key").stdout.strip()
    assert len(key) == 44


@pytest.mark.parametrize(
    ("variable", "value", "said"),
    [
        ("MAILPIPE_RETRY_MAX_ATTEMPTS", "abc", "setting MAILPIPE_RETRY_MAX_ATTEMPTS: Input should"),
        ("MAILPIPE_RETRY_MAX_ATTEMPTS", "0", "greater than or equal to 1"),
        ("MAILPIPE_TASK_TIME_LIMIT_SECONDS", "400", "send_max_seconds must be longer than"),
        # The list and dict settings are JSON: a value that is not says so, not a traceback.
        ("MAILPIPE_API_KEYS", "not-json", "setting MAILPIPE_API_KEYS: not JSON"),
        ("MAILPIPE_API_KEYS", '{"name": "a"}', "setting MAILPIPE_API_KEYS: Input should be"),
        ("MAILPIPE_API_KEYS", '[{"name": "a"}]', "setting MAILPIPE_API_KEYS[0].sha256: Field"),
        # A broker kombu cannot be: said as such, not as "broker unreachable" later.
        (
            "MAILPIPE_BROKER_URL",
            "http://127.0.0.1:6379/0",
            "setting MAILPIPE_BROKER_URL: http:// "
            "is not a broker: use redis://, rediss://, amqp://, amqps://, pyamqp://",
        ),
        ("MAILPIPE_BROKER_URL", "127.0.0.1:6379", "setting MAILPIPE_BROKER_URL: no scheme: use"),
        # Jobs record the name of the key that made them: two keys may not share one.
        ("MAILPIPE_API_KEYS", TWO_KEYS_NAMED_A, "MAILPIPE_API_KEYS: two keys named 'a'"),
        # Where callbacks may go: comma-separated entries, a bad one named.
        (
            "MAILPIPE_CALLBACK_ALLOWED",
            "*.example.com, ftp://hooks.example.com",
            "setting MAILPIPE_CALLBACK_ALLOWED: 'ftp://hooks.example.com': the scheme may be",
        ),
    ],
)
def test_a_bad_setting_is_one_line_for_the_cli_and_the_worker(
    env: dict[str, str], variable: str, value: str, said: str
) -> None:
    bad = {**env, variable: value}
    cli = run(bad, "status", "x")
    worker = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "worker", "worker", "-P", "solo"],
        env=bad, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    for result in (cli, worker):
        assert result.returncode == 1
        assert result.stderr.count("\n") == 1, result.stderr
        assert result.stderr.startswith("mailpipe: error: ") and said in result.stderr


def test_json_settings_are_the_ones_tested_above() -> None:
    # A new list or dict setting must join the bad-value cases above.
    complex_fields = {
        name
        for name, field in Settings.model_fields.items()
        if get_origin(field.annotation) in (tuple, list, dict, set, frozenset)
    }
    assert complex_fields == {"api_keys", "callback_allowed"}


def test_an_empty_variable_counts_as_unset_for_every_setting(env: dict[str, str]) -> None:
    # As compose files and env files write them: MAILPIPE_API_KEYS= and the like.
    empty = {f"MAILPIPE_{name.upper()}": "" for name in Settings.model_fields}
    # The test's own database, Redis and profiles stay set; the broker too, so that nothing
    # can reach the machine's shared Redis on the default port.
    blank = {**empty, **env, "MAILPIPE_BROKER_URL": env["MAILPIPE_REDIS_URL"]}
    for name in ("MAILPIPE_API_KEYS", "MAILPIPE_RELAY_TLS_PORT", "MAILPIPE_SMTP_TIMEOUT_SECONDS"):
        assert blank[name] == ""
    listed = run(blank, "profiles", "list")
    assert listed.returncode == 0, listed.stderr
    assert listed.stderr == ""
    report = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "worker", "report"],
        env=blank, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert report.returncode == 0, report.stderr
    assert "error" not in report.stderr.lower()


def test_send_with_the_broker_down_keeps_the_job_and_exits_3(env: dict[str, str]) -> None:
    down = {**env, "MAILPIPE_BROKER_URL": f"redis://127.0.0.1:{free_port()}/0"}
    sent = run(down, "send", "--profile", "app", "--to", "oncall@example.test",
               "--subject", "db-01 down", "--text", "disk full", "--wait", "30")  # fmt: skip
    assert sent.returncode == 3, sent.stderr
    job_id = sent.stdout.strip()
    (line,) = sent.stderr.strip().splitlines()[-1:]
    assert line == (
        f"mailpipe: job {job_id} is stored but the broker is unreachable; "
        "a worker's sweep sends it on once the broker is back"
    )
    store = Store(env["MAILPIPE_DATABASE_URL"])
    try:
        job = store.get_job(job_id)
        assert job is not None and job.status == "queued"
        assert job.published_at is None, "the next sweep publishes it, without waiting its grace"
    finally:
        store.dispose()


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["status"], "Missing argument 'JOB_ID' (`mailpipe status --help` shows the usage)"),
        (["nosuch"], "No such command 'nosuch' (`mailpipe --help` shows the usage)"),
        (["send", "--profile", "app"], "Missing option '--to' (`mailpipe send --help` shows"),
        (["serve", "--port", "x"], "Invalid value for '--port': 'x' is not a valid integer"),
        (["profiles", "check"], "Missing argument 'NAME' (`mailpipe profiles check --help`"),
        (
            ["send", "--profile", "app", "--to", "a@example.test", "--subject", "s"],
            "give exactly one of --text and --text-file (`mailpipe send --help` shows",
        ),
    ],
)
def test_a_usage_error_is_one_line_with_exit_status_2(
    env: dict[str, str], args: list[str], said: str
) -> None:
    result = run(env, *args)
    assert result.returncode == 2
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"mailpipe: error: {said}"), line


def test_mailpipe_alone_still_prints_its_help(env: dict[str, str]) -> None:
    result = run(env)
    assert "Commands:" in result.stdout + result.stderr


def test_a_missing_default_database_names_the_setting_and_the_directory(
    env: dict[str, str], tmp_path: Path
) -> None:
    unset = {k: v for k, v in env.items() if k != "MAILPIPE_DATABASE_URL"}
    result = subprocess.run(
        [MAILPIPE, "status", "x"], env=unset, cwd=tmp_path,
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr == (
        f"mailpipe: error: the database file {tmp_path / 'mailpipe.db'} does not exist "
        f"(MAILPIPE_DATABASE_URL=sqlite:///mailpipe.db, relative to the working directory "
        f"{tmp_path}): set MAILPIPE_DATABASE_URL to the database mailpipe uses (`make run`'s "
        "settings: `. .sandbox/env`); only for a new one, `mailpipe db upgrade` creates it\n"
    )
    assert not (tmp_path / "mailpipe.db").exists()


@pytest.mark.parametrize("command", ["serve", "relay"])
def test_serving_on_a_port_in_use_is_one_line_before_any_serving(
    env: dict[str, str], command: str
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = run(env, command, "--port", str(port))
    assert result.returncode == 1
    assert result.stdout == "", "nothing says it is serving"
    what = "the HTTP intake" if command == "serve" else "the SMTP relay"
    assert result.stderr == (
        f"mailpipe: error: 127.0.0.1:{port} is already in use, so {what} cannot listen there: "
        "another process serves it (`make run` serves the HTTP intake on 8025 and the relay on "
        "2525); stop that one or choose another --port\n"
    )


def entry_of(result: subprocess.CompletedProcess[str]) -> dict[str, object]:
    """The MAILPIPE_API_KEYS entry `api-key new` printed (its last line)."""
    assert result.returncode == 0, result.stderr
    entry: dict[str, object] = json.loads(result.stdout.splitlines()[-1])
    return entry


def test_api_key_new_writes_a_route_only_key_and_each_unrestricted_form(
    env: dict[str, str],
) -> None:
    profiles = Path(env["MAILPIPE_PROFILES_FILE"])
    profiles.write_text(
        profiles.read_text() + '\n[routes.oncall]\nprofile = "app"\nto = ["o@example.test"]\n'
    )

    route_only = entry_of(run(env, "api-key", "new", "alertmanager", "--route", "oncall"))
    assert (route_only["profiles"], route_only["routes"], route_only["admin"]) == (
        [],
        ["oncall"],
        False,
    )
    unrestricted = entry_of(run(env, "api-key", "new", "ops", "--profile", "*", "--route", "*"))
    assert (unrestricted["profiles"], unrestricted["routes"]) == (["*"], ["*"])
    assert entry_of(run(env, "api-key", "new", "audit", "--admin"))["admin"] is True
    assert entry_of(run(env, "api-key", "new", "mail", "--profile", "relay"))["profiles"] == [
        "relay"
    ]


def test_api_key_new_refuses_a_route_or_profile_the_file_does_not_have(
    env: dict[str, str],
) -> None:
    path = env["MAILPIPE_PROFILES_FILE"]

    route = run(env, "api-key", "new", "alertmanager", "--route", "oncal")
    profile = run(env, "api-key", "new", "alertmanager", "--profile", "ap")

    assert (route.returncode, route.stdout) == (1, "")
    assert route.stderr == f"mailpipe: error: {path}: no route 'oncal' (routes: none)\n"
    assert (profile.returncode, profile.stdout) == (1, "")
    assert profile.stderr == f"mailpipe: error: {path}: no profile 'ap' (profiles: app, relay)\n"
