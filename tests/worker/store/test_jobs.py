"""The store on SQLite and PostgreSQL: idempotency, exclusive claims, attempts, stale jobs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy

from worker.errors import ConfigError
from worker.store import AttemptRecord, Job, Store, utcnow
from worker.transport import Outcome, RecipientResult

WINDOW = timedelta(hours=24)


def new_job(key: str | None = None, profile: str = "p") -> Job:
    return Job(
        profile=profile,
        status="queued",
        priority="normal",
        idempotency_key=key,
        notification={"to": ["a@example.test"], "subject": "s"},
        sender="alerts@example.test",
        recipients=["a@example.test"],
        message=b"Subject: s\r\n\r\nbody\r\n",
        message_id="<x@example.test>",
        smtputf8=False,
        attempt_count=0,
    )


def test_a_repeated_idempotency_key_returns_the_first_job(store: Store) -> None:
    first, created = store.add_job(new_job("alert-42"), idempotency_window=WINDOW)
    again, created_again = store.add_job(new_job("alert-42"), idempotency_window=WINDOW)
    assert created and not created_again
    assert again == first
    other, _ = store.add_job(new_job("alert-42", profile="q"), idempotency_window=WINDOW)
    assert other != first, "keys are per profile"


def test_an_expired_idempotency_key_starts_a_new_job(store: Store) -> None:
    first, _ = store.add_job(new_job("alert-42"), idempotency_window=WINDOW)
    second, created = store.add_job(new_job("alert-42"), idempotency_window=timedelta(0))
    assert created and second != first
    assert store.get_job(first) is not None


def test_only_one_claim_wins(store: Store) -> None:
    job_id, _ = store.add_job(new_job(), idempotency_window=WINDOW)
    lease = timedelta(minutes=5)
    assert store.claim(job_id, "worker-a", lease) is not None
    assert store.claim(job_id, "worker-b", lease) is None


def test_a_claim_whose_lease_ran_out_can_be_taken_over(store: Store) -> None:
    job_id, _ = store.add_job(new_job(), idempotency_window=WINDOW)
    assert store.claim(job_id, "crashed", timedelta(seconds=-1)) is not None
    taken = store.claim(job_id, "worker-b", timedelta(minutes=5))
    assert taken is not None
    assert taken.worker == "worker-b"


def test_a_job_is_not_claimed_before_it_is_due(store: Store) -> None:
    job_id, _ = store.add_job(new_job(), idempotency_window=WINDOW)
    store.claim(job_id, "w", timedelta(minutes=5))
    store.reschedule(job_id, "w", utcnow() + timedelta(minutes=1))
    assert store.claim(job_id, "w", timedelta(minutes=5)) is None


def test_attempts_are_recorded_with_recipients_and_the_job_finishes(store: Store) -> None:
    job_id, _ = store.add_job(new_job(), idempotency_window=WINDOW)
    store.claim(job_id, "w", timedelta(minutes=5))
    started = datetime.now(UTC)
    transient = Outcome(
        kind="transient", phase="rcpt", code=451, enhanced_code="4.3.0", text="4.3.0 later"
    )
    store.record_attempt(
        job_id,
        AttemptRecord("p", started, started + timedelta(seconds=1), "w", transient, "fresh", 0.02),
        number=1,
        status="queued",
        next_attempt_at=started + timedelta(seconds=30),
    )
    store.claim(job_id, "w", timedelta(minutes=5))  # not due yet
    with store.session() as session:
        session.execute(sqlalchemy.update(Job).values(next_attempt_at=None))
    assert store.claim(job_id, "w", timedelta(minutes=5)) is not None
    delivered = Outcome(
        kind="delivered",
        phase="data",
        code=250,
        text="2.0.0 queued as A1",
        queue_id="A1",
        recipients=(RecipientResult("a@example.test", True, 250, "2.1.5", "ok"),),
    )
    store.record_attempt(
        job_id,
        AttemptRecord("p", started, started, "w", delivered, reused_connection=True),
        number=2,
        status="delivered",
        next_attempt_at=None,
    )
    job = store.get_job(job_id)
    assert job is not None
    assert (job.status, job.attempt_count, job.outcome) == ("delivered", 2, "delivered")
    assert [a.outcome for a in job.attempts] == ["transient", "delivered"]
    assert job.attempts[0].smtp_code == 451
    assert job.attempts[0].token_source == "fresh"
    assert job.attempts[1].recipients[0].address == "a@example.test"
    assert job.attempts[1].queue_id == "A1"
    assert store.claim(job_id, "w", timedelta(minutes=5)) is None, "delivered is final"
    assert [a.outcome for a in store.attempts(failed=True)] == ["transient"]


def test_stale_jobs_are_the_due_unpublished_and_the_abandoned(store: Store) -> None:
    grace = timedelta(seconds=60)
    lost, _ = store.add_job(new_job("a"), idempotency_window=WINDOW)
    store.mark_published([lost], at=utcnow() - timedelta(minutes=5))  # the broker lost it
    fresh, _ = store.add_job(new_job("b"), idempotency_window=WINDOW)  # in flight
    abandoned, _ = store.add_job(new_job("c"), idempotency_window=WINDOW)
    store.mark_published([abandoned], at=utcnow() - timedelta(minutes=5))
    store.claim(abandoned, "crashed", timedelta(seconds=-1))
    later, _ = store.add_job(new_job("d"), idempotency_window=WINDOW)
    store.claim(later, "w", timedelta(minutes=5))
    store.reschedule(later, "w", utcnow() + timedelta(hours=2))
    stale = {job_id for job_id, _ in store.stale_jobs(grace=grace)}
    assert stale == {lost, abandoned}
    assert fresh not in stale, "a message in flight is not sent twice"


def test_a_database_without_the_schema_is_refused(tmp_path: pytest.TempPathFactory) -> None:
    empty = Store(f"sqlite:///{tmp_path}/empty.db")
    with pytest.raises(ConfigError, match="run `mailpipe db upgrade`"):
        empty.check_schema()
    empty.upgrade()
    empty.check_schema()
    empty.engine.dispose()


def test_a_worker_whose_claim_was_taken_over_does_not_overwrite_the_job(store: Store) -> None:
    job_id, _ = store.add_job(new_job(), idempotency_window=WINDOW)
    store.claim(job_id, "slow", timedelta(seconds=-1))  # its lease has already run out
    assert store.claim(job_id, "fast", timedelta(minutes=5)) is not None
    late = datetime.now(UTC)
    failed = Outcome(kind="permanent", phase="data", code=552, text="5.3.4 too big")
    store.record_attempt(
        job_id, AttemptRecord("p", late, late, "slow", failed),
        number=1, status="failed", next_attempt_at=None,
    )  # fmt: skip
    job = store.get_job(job_id)
    assert job is not None
    assert (job.status, job.worker, job.attempt_count) == ("sending", "fast", 1)
    assert [a.worker for a in job.attempts] == ["slow"], "the attempt is still history"
