"""A page is never stuck, looped or half-sent: crashes, failed records, partial refusals."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
import sqlalchemy

from tests.pipeline import Pipeline
from tests.tasks.test_pipeline import send
from worker.delivery import deliver
from worker.faces.reports import recipient_states
from worker.intake import InvalidMessageError, notify
from worker.store import Job, StoreUnavailableError, utcnow


def message_ids(pipeline: Pipeline) -> list[str]:
    return [m.message["Message-ID"] for m in pipeline.server.messages]


@pytest.mark.parametrize("pool", ["prefork", "threads"])
def test_a_job_held_by_a_killed_worker_is_sent_once_by_another_within_30_s(
    pipeline: Pipeline, pool: str
) -> None:
    pipeline.server.rcpt_delay_seconds = 5.0  # the job stays in flight at the server
    doomed = pipeline.start_worker(pool=pool, concurrency=2)
    job_id = send(pipeline)
    pipeline.wait_for(lambda: pipeline.server.rcpt_commands >= 1)
    pipeline.kill(doomed)  # parent and children, as the OOM killer or a lost node would
    killed_at = time.monotonic()
    pipeline.server.rcpt_delay_seconds = 0.0
    pipeline.start_worker(pool=pool, concurrency=2)
    pipeline.start_beat()  # its sweep finds the job once the dead worker's lease runs out

    pipeline.wait_final(job_id, seconds=60)
    recovered_in = time.monotonic() - killed_at
    job = pipeline.runtime.store.get_job(job_id)
    assert job is not None
    assert (job.status, job.attempt_count, job.sends) == ("delivered", 1, 2)
    assert message_ids(pipeline) == [f"<{job_id}@example.test>"], "exactly once"
    assert recovered_in < 30, f"recovered in {recovered_in:.1f}s"


def test_a_send_whose_record_failed_after_the_250_is_recorded_not_resent(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt = pipeline.runtime
    job_id = send(pipeline)

    def database_down(*args: object, **kwargs: object) -> bool:
        raise StoreUnavailableError("database error: connection refused")

    with monkeypatch.context() as patch:
        patch.setattr(rt.store, "record_attempts", database_down)
        with pytest.raises(StoreUnavailableError):
            deliver(job_id, rt, worker="first")
    assert len(pipeline.server.messages) == 1, "the server accepted it"
    with rt.store.session() as session:  # the worker gave up the task; its lease runs out
        session.execute(sqlalchemy.update(Job).values(lease_until=utcnow() - timedelta(seconds=1)))

    decision = deliver(job_id, rt, worker="second")

    assert decision.action == "done"
    job = rt.store.get_job(job_id)
    assert job is not None
    assert (job.status, job.attempt_count, job.sends) == ("delivered", 1, 2)
    assert job.attempts[0].worker == "second"
    assert job.attempts[0].recipients[0].accepted
    assert len(pipeline.server.messages) == 1, "nothing was sent twice"


def test_a_job_sent_again_and_again_without_a_record_stops_with_the_reason(
    pipeline: Pipeline,
) -> None:
    rt = pipeline.runtime
    job_id = send(pipeline)
    for _ in range(rt.settings.retry_max_attempts):  # claimed, then its worker died each time
        assert rt.store.claim(job_id, "crashed", timedelta(seconds=-1)) is not None

    assert deliver(job_id, rt, worker="w").action == "done"

    job = rt.store.get_job(job_id)
    assert job is not None
    assert job.status == "failed"
    assert "without a recorded outcome" in str(job.outcome_text)
    assert pipeline.server.messages == []


def test_a_recipient_refused_for_now_is_retried_on_its_own(pipeline: Pipeline) -> None:
    # The first RCPT of the first transaction gets a 451; the other recipient is accepted.
    pipeline.server.fail_next("rcpt", "451 4.2.1 Mailbox busy, try again")
    pipeline.start_worker()
    job_id = send(pipeline, to=["busy@example.test", "oncall@example.test"])

    pipeline.wait_final(job_id)
    job = pipeline.runtime.store.get_job(job_id)
    assert job is not None
    assert (job.status, job.attempt_count, job.pending) == ("delivered", 2, [])
    first, second = job.attempts
    assert {r.address: r.smtp_code for r in first.recipients} == {
        "busy@example.test": 451,
        "oncall@example.test": 250,
    }
    assert [(r.address, r.accepted) for r in second.recipients] == [("busy@example.test", True)]
    assert sorted(m.rcpt_tos for m in pipeline.server.messages) == [
        ["busy@example.test"],
        ["oncall@example.test"],
    ], "two emails in all, one per recipient"
    assert [(r["address"], r["state"], r["attempt"]) for r in recipient_states(job)] == [
        ("busy@example.test", "accepted", 2),
        ("oncall@example.test", "accepted", 1),
    ]


def test_an_address_too_long_for_smtp_is_refused_at_intake_and_nothing_is_stored(
    pipeline: Pipeline,
) -> None:
    with pytest.raises(InvalidMessageError, match="local part is 660 octets, SMTP allows 64"):
        notify(
            "alerts",
            to=["ok@example.test", "ü" * 330 + "@example.test"],
            subject="s",
            text="t",
            runtime=pipeline.runtime,
        )
    assert pipeline.runtime.store.status_counts() == {}
