"""Graph sends end to end: notify → Redis → a real Celery worker → Graph sendMail → records."""

from __future__ import annotations

from tests.fakes.graph import INVALID_TOKEN, throttled
from tests.pipeline import Pipeline
from worker.intake import notify


def send(pipeline: Pipeline, n: int = 1, **fields: object) -> str:
    values: dict[str, object] = {
        "to": ["oncall@example.test"],
        "subject": f"[P1] db-0{n} down",
        "text": f"Disk full on db-0{n}",
    }
    values.update(fields)
    return notify("graph", runtime=pipeline.runtime, **values)  # type: ignore[arg-type]


def test_a_graph_profile_sends_through_sendmail_and_records_graphs_ids(
    pipeline: Pipeline,
) -> None:
    pipeline.start_worker()
    job_id = send(pipeline, bcc=["audit@example.test"])
    pipeline.wait_final(job_id)
    job = pipeline.runtime.store.get_job(job_id)
    assert job is not None
    assert (job.status, job.attempt_count) == ("delivered", 1)
    (attempt,) = job.attempts
    assert (attempt.outcome, attempt.phase, attempt.smtp_code) == ("delivered", "data", 202)
    (sent,) = pipeline.graph.sent
    assert attempt.queue_id is not None
    assert f"client-request-id={sent.headers['Client-Request-Id']}" in attempt.queue_id
    assert sent.mailbox == "alerts@example.test"
    assert sent.message["Subject"] == "[P1] db-01 down"
    assert sent.message["Message-ID"] == job.message_id
    assert sent.message["Bcc"] == "audit@example.test"
    assert sorted(r.address for r in attempt.recipients if r.accepted) == [
        "audit@example.test",
        "oncall@example.test",
    ]
    assert pipeline.server.messages == []  # not a byte over SMTP
    assert pipeline.idp.requests[0].form["scope"] == "https://graph.microsoft.com/.default"


def test_throttling_then_success_waits_out_retry_after(pipeline: Pipeline) -> None:
    pipeline.graph.then(throttled(retry_after=2))
    pipeline.start_worker()
    job_id = send(pipeline)
    pipeline.wait_final(job_id)
    job = pipeline.runtime.store.get_job(job_id)
    assert job is not None
    assert job.status == "delivered"
    first, second = job.attempts
    assert (first.outcome, first.smtp_code) == ("transient", 429)
    assert (second.outcome, second.smtp_code) == ("delivered", 202)
    # Graph's Retry-After is a floor under the backoff (0.2 s to 0.5 s here).
    assert (second.started_at - first.ended_at).total_seconds() >= 2
    assert len(pipeline.graph.sent) == 1


def test_a_401_gets_one_fresh_token_within_the_same_attempt(pipeline: Pipeline) -> None:
    pipeline.graph.then(INVALID_TOKEN)
    pipeline.start_worker()
    job_id = send(pipeline)
    pipeline.wait_final(job_id)
    job = pipeline.runtime.store.get_job(job_id)
    assert job is not None
    assert (job.status, job.attempt_count) == ("delivered", 1)
    assert job.attempts[0].token_source == "fresh"
    assert len(pipeline.idp.issued_access_tokens) == 2
    assert pipeline.graph.requests == 2
