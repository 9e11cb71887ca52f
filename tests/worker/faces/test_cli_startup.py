"""The command starts fast: each command imports the heavy libraries it needs, and no others.

What a command loads is counted, not timed (the time depends on the machine);
`python -X importtime -c 'import worker.faces.cli'` shows the detail.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import free_port, fresh_database

# Each a second or a good part of one to import, with what it imports in turn.
HEAVY = {"celery", "kombu", "fastapi", "starlette", "uvicorn", "aiosmtpd", "jinja2",
         "sqlalchemy", "alembic", "httpx", "redis", "jwt", "tenacity"}  # fmt: skip

# Runs the command in this interpreter, then says which heavy packages it loaded.
_PROBE = """
import json, sys
from worker.faces.cli import main
try:
    main(sys.argv[1:], prog_name="mailpipe")
except SystemExit:
    pass
heavy = set(json.loads(sys.stdin.read()))
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules} & heavy)), file=sys.stderr)
"""


def _loaded(env: dict[str, str], *args: str) -> set[str]:
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, *args], env=env, input=json.dumps(sorted(HEAVY)),
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    return set(json.loads(result.stderr.splitlines()[-1]))


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    profiles = tmp_path / "profiles.toml"
    profiles.write_text("""
[profiles.relay]
host = "smtp.example.net"
from_email = "noreply@example.net"
auth = "password"
password = "relay-password-value"

[routes.oncall]
profile = "relay"
to = ["oncall@example.test"]
""")
    closed = f"redis://127.0.0.1:{free_port()}"  # nothing listens: no shared Redis is used
    return {
        **os.environ,
        "MAILPIPE_PROFILES_FILE": str(profiles),
        "MAILPIPE_DATABASE_URL": fresh_database("sqlite", tmp_path),
        "MAILPIPE_BROKER_URL": f"{closed}/0",
        "MAILPIPE_REDIS_URL": f"{closed}/1",
    }


@pytest.mark.parametrize(
    ("args", "needs"),
    [
        (["--help"], set()),
        (["send", "--help"], set()),
        (["status", "0" * 32], {"sqlalchemy"}),  # the schema checked without Alembic
        (["attempts", "--since", "1h"], {"sqlalchemy"}),
        (["profiles", "list"], {"jinja2"}),  # the routes' templates are checked
        (["secret-key"], set()),
    ],
)
def test_a_command_loads_only_the_heavy_libraries_it_needs(
    env: dict[str, str], args: list[str], needs: set[str]
) -> None:
    assert _loaded(env, *args) == needs


def test_the_probe_sees_a_command_that_needs_everything(env: dict[str, str]) -> None:
    # `send` builds the Celery app: the count above would see an import that crept in.
    loaded = _loaded(env, "send", "--profile", "relay", "--to", "a@example.test",
                     "--subject", "s", "--text", "t", "--wait", "0")  # fmt: skip
    assert {"celery", "kombu", "sqlalchemy", "redis"} <= loaded
