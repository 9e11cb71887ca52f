"""A worker checks every profile when it starts: one line per unhealthy one, and it still works."""

from __future__ import annotations

from pytest_httpserver import HTTPServer

from tests.leaks import SecretRegistry
from tests.pipeline import Pipeline
from worker.intake import notify


def test_a_starting_worker_names_the_unhealthy_profile_and_serves_the_others(
    pipeline: Pipeline, http_server: HTTPServer, secrets: SecretRegistry
) -> None:
    pipeline.add_expired_secret_profile("expired", http_server, secrets)
    pipeline.env["MAILPIPE_PREFLIGHT"] = "true"
    pipeline.start_worker()
    pipeline.wait_for(lambda: "profile expired is unhealthy" in pipeline.worker_logs(), 60)
    pipeline.wait_for(lambda: "profile alerts: ready" in pipeline.worker_logs(), 60)
    (line,) = [x for x in pipeline.worker_logs().splitlines() if "profile expired is" in x]
    assert "token failed:" in line and "invalid_client" in line
    assert "the client secret has expired" in line  # the hint, on the same line
    assert pipeline.server.messages == []  # a check sends nothing
    job_id = notify(
        "alerts", runtime=pipeline.runtime, to=["oncall@example.test"], subject="s", text="t"
    )
    pipeline.wait_final(job_id)
    assert pipeline.status(job_id) == "delivered"
