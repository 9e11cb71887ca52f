"""A worker checks every profile when it starts: one line per unhealthy one, and it still works."""

from __future__ import annotations

from pytest_httpserver import HTTPServer

from tests.fake_idp import FakeIdP, reply
from tests.idp_bodies import MS_EXPIRED_SECRET
from tests.leaks import SecretRegistry
from tests.pipeline import Pipeline
from worker.intake import notify


def test_a_starting_worker_names_the_unhealthy_profile_and_serves_the_others(
    pipeline: Pipeline, http_server: HTTPServer, secrets: SecretRegistry
) -> None:
    refusing = FakeIdP(http_server, secrets, path="/preflight-expired-token")
    refusing.handlers["client_credentials"] = reply(*MS_EXPIRED_SECRET)
    path = pipeline.runtime.profiles_file.path
    path.write_text(
        path.read_text()
        + f"""
[profiles.expired]
host = "127.0.0.1"
from_email = "expired@example.test"
auth = "oauth"
grant = "client_credentials"
token_url = "{refusing.url}"
allow_insecure_token_url = true
scope = "smtp.send"
client_id = "mailpipe"
client_secret_env = "PIPELINE_SECRET"
"""
    )
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
