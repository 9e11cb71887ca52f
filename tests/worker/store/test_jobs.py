"""The store on SQLite and PostgreSQL: idempotency, exclusive claims, attempts, stale jobs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy

from worker.errors import ConfigError
from worker.store import AttemptEntry, AttemptRecord, Job, NextStep, Store, utcnow
from worker.transport import Outcome, RecipientResult

WINDOW = timedelta(hours=24)


def new_job(key: str | None = None, profile: str = "p", api_key_name: str | None = None) -> Job:
    return Job(
        profile=profile,
        status="queued",
        priority="normal",
        idempotency_key=key,
        api_key_name=api_key_name,
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


def test_an_idempotency_key_is_unique_per_api_key_and_shared_by_jobs_made_without_one(
    store: Store,
) -> None:
    decoy, _ = store.add_job(
        new_job("db-01:DiskFull", api_key_name="decoy"), idempotency_window=WINDOW
    )
    page, created = store.add_job(
        new_job("db-01:DiskFull", api_key_name="pager"), idempotency_window=WINDOW
    )
    assert created and page != decoy, "one key cannot take another's idempotency key"
    again, created = store.add_job(
        new_job("db-01:DiskFull", api_key_name="pager"), idempotency_window=WINDOW
    )
    assert (again, created) == (page, False)
    keyless, created = store.add_job(new_job("db-01:DiskFull"), idempotency_window=WINDOW)
    assert created and keyless not in (decoy, page)
    assert store.add_job(new_job("db-01:DiskFull"), idempotency_window=WINDOW) == (keyless, False)
    batch = [
        new_job("db-01:DiskFull", api_key_name="decoy"),
        new_job("other", api_key_name="decoy"),
    ]
    assert store.add_jobs(batch, idempotency_window=WINDOW)[0] == (decoy, False)
    job = store.get_job(page)
    assert job is not None and job.api_key_name == "pager"


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


def claim(store: Store, job_id: str, worker: str = "w", lease_minutes: float = 5) -> Job:
    job = store.claim(job_id, worker, timedelta(minutes=lease_minutes))
    assert job is not None and job.claim_id is not None
    return job


def test_a_job_is_not_claimed_before_it_is_due(store: Store) -> None:
    job_id, _ = store.add_job(new_job(), idempotency_window=WINDOW)
    job = claim(store, job_id)
    store.reschedule(job_id, str(job.claim_id), utcnow() + timedelta(minutes=1))
    assert store.claim(job_id, "w", timedelta(minutes=5)) is None
    assert store.get_job(job_id).sends == 0, "a rescheduled claim sent nothing"  # type: ignore[union-attr]


def test_attempts_are_recorded_with_recipients_and_the_job_finishes(store: Store) -> None:
    job_id, _ = store.add_job(new_job(), idempotency_window=WINDOW)
    first = claim(store, job_id)
    started = datetime.now(UTC)
    transient = Outcome(
        kind="transient", phase="rcpt", code=451, enhanced_code="4.3.0", text="4.3.0 later"
    )
    assert store.record_attempt(
        job_id,
        str(first.claim_id),
        AttemptRecord("p", started, started + timedelta(seconds=1), "w", transient, "fresh", 0.02),
        number=1,
        step=NextStep("queued", started + timedelta(seconds=30)),
    )
    assert store.claim(job_id, "w", timedelta(minutes=5)) is None, "not due yet"
    with store.session() as session:
        session.execute(sqlalchemy.update(Job).values(next_attempt_at=None))
    second = claim(store, job_id)
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
        str(second.claim_id),
        AttemptRecord("p", started, started, "w", delivered, reused_connection=True),
        number=2,
        step=NextStep("delivered"),
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


def test_the_sweep_finds_the_waiting_and_the_abandoned_and_not_the_in_flight(
    store: Store,
) -> None:
    grace = timedelta(seconds=60)
    fresh, _ = store.add_job(new_job("b"), idempotency_window=WINDOW)  # its message in flight
    abandoned, _ = store.add_job(new_job("c"), idempotency_window=WINDOW)
    store.mark_published([abandoned], at=utcnow() - timedelta(minutes=5))
    claim(store, abandoned, "crashed", lease_minutes=-1 / 60)
    later, _ = store.add_job(new_job("d"), idempotency_window=WINDOW)
    store.reschedule(later, str(claim(store, later).claim_id), utcnow() + timedelta(hours=2))
    waited, _ = store.add_job(new_job("e"), idempotency_window=WINDOW)
    store.reschedule(waited, str(claim(store, waited).claim_id), utcnow() + timedelta(seconds=1))
    soon = utcnow() + timedelta(seconds=2)  # the wait is over; no message was published for it
    stale = {job_id for job_id, _ in store.unpublished_jobs(soon, grace=grace)}
    assert stale == {abandoned, waited}
    assert fresh not in stale, "a message in flight is not sent twice"


def test_jobs_are_lost_only_when_the_queue_holds_fewer_messages_than_it_should(
    store: Store,
) -> None:
    grace = timedelta(seconds=60)
    old = [store.add_job(new_job(f"o{n}"), idempotency_window=WINDOW)[0] for n in range(3)]
    store.mark_published(old, at=utcnow() - timedelta(minutes=5))
    store.add_job(new_job("new"), idempotency_window=WINDOW)  # published just now
    now = utcnow()

    backlog = store.lost_jobs(now, grace=grace, waiting_by_priority={"normal": 4})
    assert backlog == [], "a slow queue is not a lost one: no duplicates"
    one_lost = store.lost_jobs(now, grace=grace, waiting_by_priority={"normal": 3})
    assert len(one_lost) == 1 and one_lost[0][0] in old
    flushed = store.lost_jobs(now, grace=grace, waiting_by_priority={"normal": 0})
    assert {job_id for job_id, _ in flushed} == set(old), "within the grace: not yet"


def test_a_database_without_the_schema_is_refused(tmp_path: pytest.TempPathFactory) -> None:
    empty = Store(f"sqlite:///{tmp_path}/empty.db", create=True)
    with pytest.raises(ConfigError, match="run `mailpipe db upgrade`"):
        empty.check_schema()
    empty.upgrade()
    empty.check_schema()
    empty.engine.dispose()


def test_a_worker_whose_claim_was_taken_over_does_not_overwrite_the_job(store: Store) -> None:
    job_id, _ = store.add_job(new_job(), idempotency_window=WINDOW)
    slow = claim(store, job_id, "slow", lease_minutes=-1 / 60)  # its lease has run out
    fast = claim(store, job_id, "fast")
    late = datetime.now(UTC)
    failed = Outcome(kind="permanent", phase="data", code=552, text="5.3.4 too big")
    assert not store.record_attempt(
        job_id, str(slow.claim_id), AttemptRecord("p", late, late, "slow", failed),
        number=1, step=NextStep("failed"),
    )  # fmt: skip
    assert store.renew([str(slow.claim_id)], timedelta(minutes=5)) == 0, "nor renew its lease"
    assert store.renew([str(fast.claim_id)], timedelta(minutes=5)) == 1
    job = store.get_job(job_id)
    assert job is not None
    assert (job.status, job.worker, job.attempt_count) == ("sending", "fast", 1)
    assert [a.worker for a in job.attempts] == ["slow"], "the attempt is still history"


def test_a_batch_is_claimed_in_one_statement_and_only_what_is_claimable(store: Store) -> None:
    ids = [store.add_job(new_job(), idempotency_window=WINDOW)[0] for _ in range(4)]
    taken = claim(store, ids[1], "other")  # a live worker has it
    statements: list[str] = []
    sqlalchemy.event.listen(
        store.engine, "before_cursor_execute", lambda *args: statements.append(args[2])
    )
    jobs = store.claim_many([ids[3], ids[1], ids[0], ids[2], "unknown"], "w", timedelta(minutes=5))
    assert [job.id for job in jobs] == [ids[3], ids[0], ids[2]], "in the order asked"
    assert len([s for s in statements if s.lstrip().upper().startswith("UPDATE")]) == 1
    assert len({job.claim_id for job in jobs}) == 1 and jobs[0].claim_id != taken.claim_id
    assert all((job.status, job.worker, job.sends) == ("sending", "w", 1) for job in jobs)
    assert store.claim_many(ids, "w2", timedelta(minutes=5)) == [], "none free now"


def test_a_batch_is_recorded_at_once_and_a_lost_claim_keeps_its_new_owner(store: Store) -> None:
    ids = [store.add_job(new_job(), idempotency_window=WINDOW)[0] for _ in range(3)]
    slow = store.claim_many(ids, "slow", timedelta(seconds=-1))  # their leases ran out
    fast = claim(store, ids[1], "fast")  # one was taken over
    now = datetime.now(UTC)
    delivered = Outcome(
        kind="delivered",
        phase="data",
        code=250,
        text="2.0.0 queued",
        recipients=(RecipientResult("a@example.test", True, 250, "2.1.5", "ok"),),
    )
    entries = [
        AttemptEntry(job.id, str(job.claim_id), AttemptRecord("p", now, now, "slow", delivered),
                     1, NextStep("delivered", pending=()))
        for job in slow
    ]  # fmt: skip
    assert store.record_attempts(entries) == [True, False, True]
    states = [store.get_job(job_id) for job_id in ids]
    assert [(j.status, j.worker) for j in states if j] == [
        ("delivered", None),
        ("sending", "fast"),
        ("delivered", None),
    ]
    assert [len(j.attempts) for j in states if j] == [1, 1, 1], "each attempt once, none lost"
    assert all(j.attempts[0].recipients[0].accepted for j in states if j)
    assert fast.claim_id != slow[0].claim_id
    assert store.record_attempts(entries[:1]) == [False], "already recorded: no longer ours"


def test_a_job_is_claimed_with_the_queued_due_jobs_of_its_profile_and_priority(
    store: Store,
) -> None:
    def add(profile: str = "p", priority: str = "normal") -> str:
        job = new_job(profile=profile)
        job.priority = priority
        return store.add_job(job, idempotency_window=WINDOW)[0]

    older, own, newer = add(), add(), add()
    other_profile, page = add(profile="q"), add(priority="high")
    not_due = add()
    store.reschedule(not_due, str(claim(store, not_due).claim_id), utcnow() + timedelta(hours=1))
    sending = add()
    claim(store, sending, "elsewhere")
    jobs = store.claim_with_queued(own, "w", timedelta(minutes=5), limit=3)
    assert [job.id for job in jobs] == [own, older, newer], "its own first, then the oldest"
    assert len({job.claim_id for job in jobs}) == 1
    jobs = store.claim_with_queued(own, "w", timedelta(minutes=5), limit=5)
    assert jobs == [], "nothing left: not another profile, priority, a job not due or taken"
    taken = store.claim_with_queued(page, "w", timedelta(minutes=5), limit=5)
    assert [job.id for job in taken] == [page]
    assert [j.id for j in store.claim_with_queued(other_profile, "w", timedelta(1), limit=1)] == [
        other_profile
    ]
