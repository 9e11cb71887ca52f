"""Fallback profiles, real worker: a page its profile cannot deliver goes out through the next.

Three primaries, each with ``fallback = ["alerts"]``: one whose token endpoint
refuses its client (``invalid_client``), one whose server cannot be reached,
one whose server accepts a message and then drops the connection. Deliveries
are counted at the servers: each page arrives exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from pytest_httpserver import HTTPServer

from tests.fakes.idp import FakeIdP, reply
from tests.fakes.idp_bodies import MS_EXPIRED_SECRET
from tests.fakes.smtp_server import FakeSmtpServer, ServerFactory, TlsFiles
from tests.leaks import SecretRegistry
from tests.pipeline import Pipeline
from tests.support import free_port
from worker.faces.reports import job_dict, job_lines
from worker.intake import notify


@dataclass
class Pagers:
    dropping: FakeSmtpServer


def _profile(name: str, host: str, port: int, token_url: str, ca: str, **extra: str) -> str:
    lines = [
        f"[profiles.{name}]",
        f'host = "{host}"',
        f"port = {port}",
        'security = "starttls"',
        f'ca_file = "{ca}"',
        f'from_email = "{name}@pager.example.test"',
        f'from_name = "{name}"',
        'auth = "oauth"',
        'grant = "client_credentials"',
        f'token_url = "{token_url}"',
        "allow_insecure_token_url = true",
        'scope = "smtp.send"',
        'client_id = "mailpipe"',
        'client_secret_env = "PIPELINE_SECRET"',
        'fallback = ["alerts"]',
        *(f"{key} = {value}" for key, value in extra.items()),
    ]
    return "\n".join(lines) + "\n"


@pytest.fixture
def pagers(
    pipeline: Pipeline,
    make_server: ServerFactory,
    http_server: HTTPServer,
    secrets: SecretRegistry,
    tls: TlsFiles,
) -> Pagers:
    refusing = FakeIdP(http_server, secrets, path="/refusing-token")
    refusing.handlers["client_credentials"] = reply(*MS_EXPIRED_SECRET)
    dropping = make_server()
    server, ca = pipeline.server, str(tls.ca_pem)
    path = pipeline.runtime.profiles_file.path
    path.write_text(
        path.read_text()
        + _profile("pager-refused", server.host, server.port, refusing.url, ca)
        + _profile("pager-unreachable", "127.0.0.1", free_port(), pipeline.idp.url, ca)
        + _profile("pager-drops", dropping.host, dropping.port, pipeline.idp.url, ca)
    )
    pipeline.wait_for(lambda: "pager-drops" in pipeline.runtime.profiles.by_name)
    return Pagers(dropping)


def page(pipeline: Pipeline, profile: str, priority: str = "high") -> str:
    return notify(
        profile,
        runtime=pipeline.runtime,
        to=["oncall@example.test"],
        subject=f"[P1] page through {profile}",
        text="db-01 is down",
        priority=priority,  # type: ignore[arg-type]
    )


def finished(pipeline: Pipeline, job_id: str) -> dict[str, object]:
    pipeline.wait_final(job_id, seconds=60)
    job = pipeline.runtime.store.get_job(job_id)
    assert job is not None
    return job_dict(job)


@pytest.mark.parametrize(
    ("primary", "first"),
    [
        ("pager-refused", ("permanent", "token")),  # invalid_client: the secret expired
        ("pager-unreachable", ("transient", "connect")),  # nothing listens there
    ],
)
def test_a_page_its_profile_cannot_deliver_goes_out_once_through_the_fallback(
    pipeline: Pipeline, pagers: Pagers, primary: str, first: tuple[str, str]
) -> None:
    pipeline.start_worker()
    job_id = page(pipeline, primary)
    job = finished(pipeline, job_id)
    assert job["status"] == "delivered"
    assert job["delivered_by"] == "alerts"
    attempts = job["attempts"]
    assert isinstance(attempts, list)
    assert [(a["profile"], a["outcome"], a["phase"]) for a in attempts] == [
        (primary, *first),
        ("alerts", "delivered", "data"),
    ]
    (received,) = pipeline.server.messages  # exactly once, and as the fallback's sender
    assert received.mail_from == "alerts@example.test"
    assert received.message["From"] == "Example Alerts <alerts@example.test>"
    assert f"{primary}@pager.example.test" in received.message["Reply-To"]
    assert received.message["Message-ID"] == f"<{job_id}@pager.example.test>"
    stored = pipeline.runtime.store.get_job(job_id)
    assert stored is not None
    assert "  delivered   by profile alerts (a fallback)" in job_lines(stored)


def test_a_normal_job_does_not_fail_over(pipeline: Pipeline, pagers: Pagers) -> None:
    pipeline.start_worker()
    job = finished(pipeline, page(pipeline, "pager-refused", priority="normal"))
    assert job["status"] == "failed"
    assert job["delivered_by"] is None
    assert pipeline.server.messages == []


def test_a_page_the_server_accepted_then_dropped_is_not_sent_through_the_fallback(
    pipeline: Pipeline, pagers: Pagers
) -> None:
    pipeline.start_worker()
    pagers.dropping.drop_after_data(1)  # kept, then the connection closes: maybe delivered
    job = finished(pipeline, page(pipeline, "pager-drops"))
    assert job["status"] == "delivered"
    assert job["delivered_by"] == "pager-drops"
    attempts = job["attempts"]
    assert isinstance(attempts, list)
    assert [(a["profile"], a["outcome"], a["phase"]) for a in attempts] == [
        ("pager-drops", "transient", "data"),
        ("pager-drops", "delivered", "data"),
    ]
    assert pipeline.server.messages == []  # the fallback's server never saw it


def test_pages_keep_going_out_once_each_when_the_secret_dies_half_way(
    pipeline: Pipeline, http_server: HTTPServer, secrets: SecretRegistry, tls: TlsFiles
) -> None:
    # The primary's own token endpoint: it works, then answers invalid_client (the
    # secret expired), while the server stops taking the token it had issued.
    primary = FakeIdP(http_server, secrets, path="/dying-secret-token")
    revoked: set[str] = set()
    issued = (pipeline.idp.issued_access_tokens, primary.issued_access_tokens)
    pipeline.server.token_ok = lambda user, t: any(t in i for i in issued) and t not in revoked
    server, path = pipeline.server, pipeline.runtime.profiles_file.path
    path.write_text(
        path.read_text() + _profile("pager", server.host, server.port, primary.url, str(tls.ca_pem))
    )
    pipeline.wait_for(lambda: "pager" in pipeline.runtime.profiles.by_name)
    pipeline.start_worker()
    first = [page(pipeline, "pager") for _ in range(10)]
    pipeline.wait_final(*first, seconds=60)
    primary.handlers["client_credentials"] = reply(*MS_EXPIRED_SECRET)
    revoked.update(primary.issued_access_tokens)
    pipeline.server.drop_connections()  # pooled sessions, authenticated before, end too
    second = [page(pipeline, "pager") for _ in range(10)]
    pipeline.wait_final(*second, seconds=90)

    jobs = [finished(pipeline, job_id) for job_id in first + second]
    assert [j["status"] for j in jobs] == ["delivered"] * 20
    assert {j["delivered_by"] for j in jobs[:10]} == {"pager"}
    assert {j["delivered_by"] for j in jobs[10:]} == {"alerts"}
    # Exactly once each, counted at the server by Message-ID.
    received = [m.message["Message-ID"] for m in pipeline.server.messages]
    assert sorted(received) == sorted(f"<{j}@pager.example.test>" for j in first + second)
