"""A producer is a thin client: ``import tasks`` and ``tasks.notify(...)`` load no transport.

An incident system that only queues notifications must not carry the
worker's SMTP pool, Graph client, token endpoint code or faces (nor their
memory). Checked in a fresh interpreter, after a real notify() to a real
Redis and database; `python -X importtime -c 'import tasks'` shows the detail.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import redis

from tests.support import fresh_database

# Modules a worker runs to send, and the faces' libraries: none belongs in a producer.
WORKER_ONLY = (
    "tasks.jobs",
    "worker.runtime",
    "worker.transport",
    "worker.delivery",
    "worker.bounces",
    "worker.faces",
    "worker.credentials.access",
    "worker.credentials.tokens",
    "providers.client_credentials",
    "providers.refresh_token",
    "providers.service_account",
    "providers.token_endpoint",
    "smtplib",
    "imaplib",
    "httpx",
    "jwt",
    "alembic",
    "fastapi",
    "starlette",
    "uvicorn",
    "jinja2",
    "aiosmtpd",
    "argon2",
)

_PRODUCER = """
import json, sys
import tasks
job_id = tasks.notify("m365", to=["oncall@example.test"], subject="[P1] disk", text="95% full")
print(json.dumps({"job_id": job_id, "modules": sorted(sys.modules)}))
"""


def test_notify_publishes_without_importing_a_transport(tmp_path: Path, redis_url: str) -> None:
    profiles = tmp_path / "profiles.toml"
    profiles.write_text("""
[profiles.m365]
provider = "microsoft365"
tenant = "00000000-0000-0000-0000-000000000000"
from_email = "alerts@example.test"
auth = "oauth"
grant = "client_credentials"
client_id = "11111111-1111-1111-1111-111111111111"
client_secret_env = "PRODUCER_TEST_UNSET_SECRET"
""")
    base = redis_url.rsplit("/", 1)[0]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILPIPE_")}
    env |= {
        "MAILPIPE_PROFILES_FILE": str(profiles),
        "MAILPIPE_DATABASE_URL": fresh_database("sqlite", tmp_path),
        "MAILPIPE_BROKER_URL": f"{base}/0",
        "MAILPIPE_REDIS_URL": f"{base}/1",
    }
    result = subprocess.run(
        [sys.executable, "-c", _PRODUCER], env=env, cwd=tmp_path,
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    out = json.loads(result.stdout.splitlines()[-1])
    broker = redis.Redis.from_url(f"{base}/0")
    try:
        (message,) = broker.lrange("mail", 0, -1)  # the task message is on the broker
    finally:
        broker.close()
    assert json.loads(message)["headers"]["argsrepr"] == repr((out["job_id"],))
    loaded = [
        name for name in out["modules"]
        if any(name == heavy or name.startswith(heavy + ".") for heavy in WORKER_ONLY)
    ]  # fmt: skip
    assert loaded == []
