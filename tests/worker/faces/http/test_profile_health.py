"""Token health with a real worker: a broken credential shows before a page needs it.

Beat's pre-refresh runs once; a profile whose token endpoint refuses its
client (an expired secret) is then unhealthy in `mailpipe profiles status`, in
``GET /v1/profiles`` and in the metrics, and the healthy one, idle, got its
token with nothing sent.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from tests.fakes.idp import FakeIdP
from tests.leaks import SecretRegistry
from tests.pipeline import LIMITED_KEY, Pipeline
from tests.worker.faces.http.conftest import Api
from worker.credentials.health import TokenHealth
from worker.queue import REFRESH_TASK

MAILPIPE = str(Path(sys.executable).parent / "mailpipe")


@pytest.fixture
def broken(pipeline: Pipeline, http_server: HTTPServer, secrets: SecretRegistry) -> FakeIdP:
    return pipeline.add_expired_secret_profile("broken", http_server, secrets)


def test_one_beat_run_finds_a_broken_credential_and_warms_the_idle_ones(
    pipeline: Pipeline, broken: FakeIdP, api: Api
) -> None:
    health = TokenHealth(pipeline.runtime.redis)
    pipeline.start_worker()
    pipeline.runtime.celery.send_task(REFRESH_TASK)
    pipeline.wait_for(lambda: all(health.last(p) for p in ("alerts", "graph", "broken")), 60)
    assert pipeline.server.messages == []  # nothing was sent: the tokens are warm anyway
    assert len(pipeline.idp.requests) == 2  # alerts and graph, once each

    cli = subprocess.run(
        [MAILPIPE, "profiles", "status"], env=pipeline.env,
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert cli.returncode == 1, cli.stderr
    assert "alerts: healthy  (generic, oauth/client_credentials)" in cli.stdout
    assert "broken: UNHEALTHY" in cli.stdout
    assert "FAILED: invalid_client" in cli.stdout
    assert "hint: the client secret has expired" in cli.stdout
    one = subprocess.run(
        [MAILPIPE, "profiles", "status", "alerts", "--json"], env=pipeline.env,
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert one.returncode == 0, one.stderr
    (alerts,) = json.loads(one.stdout)
    assert alerts["healthy"] is True
    assert alerts["token"]["state"] == "valid"

    listed = api.client.get("/v1/profiles")
    assert listed.status_code == 200
    by_name = {p["profile"]: p for p in listed.json()}
    assert by_name["broken"]["healthy"] is False
    assert by_name["broken"]["last_refresh"]["error"] == "invalid_client"
    assert by_name["alerts"]["healthy"] is True
    limited = api.anonymous.get("/v1/profiles", headers={"Authorization": f"Bearer {LIMITED_KEY}"})
    assert limited.status_code == 200
    assert limited.json() == []  # it may use profile "other" only, which does not exist

    metrics = api.client.get("/metrics").text
    assert 'mailpipe_profile_healthy{profile="broken"} 0.0' in metrics
    assert 'mailpipe_profile_healthy{profile="alerts"} 1.0' in metrics
    assert (
        'mailpipe_token_refresh_failures_total{error="invalid_client",profile="broken"} 1.0'
        in metrics
    )
