"""Jobs and their attempts: the outbox every message goes through.

Every state change is one short transaction. Claiming a job for sending is a
single conditional UPDATE, so two workers holding messages for the same job
cannot both send it (docs/architecture.md, "Nothing lost, nothing twice").
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol, cast

from sqlalchemy import Table, bindparam, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from worker.store.database import Database
from worker.store.tables import Attempt, AttemptRecipient, Job, utcnow


class _RecordedReply(Protocol):
    """What the store keeps of a server's reply, for a message or one recipient."""

    @property
    def kind(self) -> str: ...
    @property
    def code(self) -> int | None: ...
    @property
    def enhanced_code(self) -> str | None: ...
    @property
    def text(self) -> str: ...


class RecordedRecipient(_RecordedReply, Protocol):
    @property
    def address(self) -> str: ...
    @property
    def accepted(self) -> bool: ...


class RecordedOutcome(_RecordedReply, Protocol):
    """What the store keeps of a send's outcome (``transport.Outcome`` is one)."""

    @property
    def phase(self) -> str: ...
    @property
    def hint(self) -> str | None: ...
    @property
    def queue_id(self) -> str | None: ...
    @property
    def recipients(self) -> Sequence[RecordedRecipient]: ...
    def summary(self) -> str: ...


@dataclass(frozen=True)
class AttemptRecord:
    """Everything about one attempt that goes into the attempts table."""

    profile: str
    started_at: datetime
    ended_at: datetime
    worker: str
    outcome: RecordedOutcome
    token_source: str | None = None
    token_seconds: float | None = None
    reused_connection: bool = False


class Store(Database):
    """Jobs and attempts, behind a small API the tasks and the CLI share."""

    # -- jobs ----------------------------------------------------------------

    def add_job(self, job: Job, *, idempotency_window: timedelta) -> tuple[str, bool]:
        """Insert ``job``; with a known idempotency key, return the first job's id instead.

        Returns (job id, created). A key older than the window is released
        (the old job keeps its record) and the new job takes it.
        """
        now = utcnow()
        job.id = job.id or uuid.uuid4().hex
        # Counted as published at once: the caller publishes right after the
        # commit, and if that fails the sweeper republishes after its grace.
        job.created_at = job.updated_at = job.published_at = now
        if job.idempotency_key is not None:
            with self.session() as session:
                existing = session.scalars(
                    select(Job).where(
                        Job.profile == job.profile, Job.idempotency_key == job.idempotency_key
                    )
                ).first()
                if existing is not None and existing.created_at > now - idempotency_window:
                    return existing.id, False
                if existing is not None:
                    existing.idempotency_key = None
        try:
            with self.session() as session:
                session.add(job)
        except IntegrityError:
            # Another producer inserted the same key between our read and write.
            with self.session() as session:
                first = session.scalars(
                    select(Job.id).where(
                        Job.profile == job.profile, Job.idempotency_key == job.idempotency_key
                    )
                ).one()
            return first, False
        return job.id, True

    def mark_published(self, job_ids: Sequence[str], *, at: datetime | None = None) -> None:
        """Note when the jobs' task messages become deliverable (now, or a countdown's end)."""
        with self.session() as session:
            session.execute(
                update(Job).where(Job.id.in_(job_ids)).values(published_at=at or utcnow())
            )

    def claim(self, job_id: str, worker: str, lease: timedelta) -> Job | None:
        """Take the job for sending, or None if it is done, not due, or a live worker has it."""
        now = utcnow()
        params = {
            "b_id": job_id,
            "b_worker": worker,
            "b_now": now,
            "b_due": now + _EARLY,
            "b_lease": now + lease,
        }
        with self.transaction() as connection:
            row = connection.execute(_CLAIM, params).one_or_none()
        return Job(**row._mapping) if row is not None else None

    def reschedule(self, job_id: str, worker: str, not_before: datetime) -> None:
        """Give a claimed job back without an attempt (rate limited)."""
        with self.session() as session:
            session.execute(
                update(Job)
                .where(Job.id == job_id, Job.status == "sending", Job.worker == worker)
                .values(
                    status="queued",
                    next_attempt_at=not_before,
                    worker=None,
                    lease_until=None,
                    updated_at=utcnow(),
                )
            )

    def record_attempt(
        self,
        job_id: str,
        record: AttemptRecord,
        *,
        number: int,
        status: str,
        next_attempt_at: datetime | None,
    ) -> None:
        """Write attempt ``number`` and move the job on, in one transaction.

        Plain INSERTs and one conditional UPDATE: this runs once per message.
        """
        result = record.outcome
        finished = status in ("delivered", "failed")
        with self.transaction() as connection:
            attempt_id = connection.execute(
                _INSERT_ATTEMPT,
                {
                    "job_id": job_id,
                    "number": number,
                    "profile": record.profile,
                    "started_at": record.started_at,
                    "ended_at": record.ended_at,
                    "worker": record.worker,
                    "outcome": result.kind,
                    "phase": result.phase,
                    "smtp_code": result.code,
                    "enhanced_code": result.enhanced_code,
                    "text": result.text,
                    "hint": result.hint,
                    "queue_id": result.queue_id,
                    "token_source": record.token_source,
                    "token_seconds": record.token_seconds,
                    "reused_connection": record.reused_connection,
                    "duration_seconds": (record.ended_at - record.started_at).total_seconds(),
                },
            ).scalar_one()
            if result.recipients:
                connection.execute(
                    insert(_RECIPIENTS),
                    [
                        {
                            "attempt_id": attempt_id,
                            "address": r.address,
                            "accepted": r.accepted,
                            "smtp_code": r.code,
                            "enhanced_code": r.enhanced_code,
                            "text": r.text,
                            "outcome": r.kind,
                        }
                        for r in result.recipients
                    ],
                )
            owned = connection.execute(
                _MOVE_ON,
                {
                    "b_id": job_id,
                    "b_worker": record.worker,
                    "b_status": status,
                    "b_next": next_attempt_at,
                    "b_ended": record.ended_at,
                    "b_finished": record.ended_at if finished else None,
                    "b_outcome": result.kind if finished else None,
                    "b_outcome_text": result.summary() if finished else None,
                },
            )
            if owned.rowcount != 1:
                # Our lease ran out and another worker took the job over: the
                # attempt is still history, but the job's state is theirs now.
                connection.execute(_COUNT_ATTEMPT, {"b_id": job_id})

    def get_job(self, job_id: str) -> Job | None:
        with self.session() as session:
            return session.scalars(
                select(Job)
                .where(Job.id == job_id)
                .options(selectinload(Job.attempts).selectinload(Attempt.recipients))
            ).first()

    def attempts(
        self,
        *,
        profile: str | None = None,
        failed: bool = False,
        since: datetime | None = None,
        limit: int = 200,
    ) -> list[Attempt]:
        query = select(Attempt).options(selectinload(Attempt.recipients))
        if profile:
            query = query.where(Attempt.profile == profile)
        if failed:
            query = query.where(Attempt.outcome != "delivered")
        if since:
            query = query.where(Attempt.started_at >= since)
        with self.session() as session:
            return list(session.scalars(query.order_by(Attempt.started_at.desc()).limit(limit)))

    def stale_jobs(self, *, grace: timedelta, limit: int = 500) -> list[tuple[str, str]]:
        """(id, priority) of jobs that should be on the queue but may not be.

        Queued and due for longer than ``grace`` without a publish since, or
        claimed by a worker whose lease ran out (it crashed mid-send).
        """
        now = utcnow()
        due = or_(Job.next_attempt_at.is_(None), Job.next_attempt_at <= now)
        unpublished = or_(Job.published_at.is_(None), Job.published_at <= now - grace)
        with self.session() as session:
            rows = session.execute(
                select(Job.id, Job.priority)
                .where(
                    or_(
                        (Job.status == "queued") & due & unpublished,
                        (Job.status == "sending") & (Job.lease_until < now) & unpublished,
                    )
                )
                .order_by(Job.created_at)
                .limit(limit)
            )
            return [(row[0], row[1]) for row in rows]

    def status_counts(self) -> dict[str, int]:
        with self.session() as session:
            rows = session.execute(select(Job.status, func.count()).group_by(Job.status))
            return {status: count for status, count in rows}

    def oldest_due_queued_at(self, now: datetime) -> datetime | None:
        """When the oldest job that is due and still queued was created (a stuck queue)."""
        due = or_(Job.next_attempt_at.is_(None), Job.next_attempt_at <= now)
        with self.session() as session:
            return session.scalar(
                select(func.min(Job.created_at)).where(Job.status == "queued", due)
            )


# A task message may arrive this much before its job is due (clock skew).
_EARLY = timedelta(seconds=5)

# The statements every message runs, built once: building a statement costs
# more than SQLAlchemy's compiled cache saves (bench/RESULTS.md, profile).
_JOBS = cast(Table, Job.__table__)
_ATTEMPTS = cast(Table, Attempt.__table__)
_RECIPIENTS = cast(Table, AttemptRecipient.__table__)
_CLAIM = (
    update(_JOBS)
    .where(
        _JOBS.c.id == bindparam("b_id"),
        or_(
            _JOBS.c.status == "queued",
            (_JOBS.c.status == "sending") & (_JOBS.c.lease_until < bindparam("b_now")),
        ),
        # A message that arrives early (clock skew, a stale copy) must not
        # jump a backoff or a rate limit.
        or_(
            _JOBS.c.next_attempt_at.is_(None),
            _JOBS.c.next_attempt_at <= bindparam("b_due"),
        ),
    )
    .values(
        status="sending",
        worker=bindparam("b_worker"),
        lease_until=bindparam("b_lease"),
        updated_at=bindparam("b_now"),
    )
    .returning(*_JOBS.c)  # one statement: UPDATE … RETURNING (SQLite ≥ 3.35, PostgreSQL)
)
_INSERT_ATTEMPT = insert(_ATTEMPTS).returning(_ATTEMPTS.c.id)
_MOVE_ON = (
    update(_JOBS)
    .where(
        _JOBS.c.id == bindparam("b_id"),
        _JOBS.c.status == "sending",
        _JOBS.c.worker == bindparam("b_worker"),
    )
    .values(
        attempt_count=_JOBS.c.attempt_count + 1,
        status=bindparam("b_status"),
        next_attempt_at=bindparam("b_next"),
        worker=None,
        lease_until=None,
        updated_at=bindparam("b_ended"),
        finished_at=bindparam("b_finished"),
        outcome=bindparam("b_outcome"),
        outcome_text=bindparam("b_outcome_text"),
    )
)
_COUNT_ATTEMPT = (
    update(_JOBS)
    .where(_JOBS.c.id == bindparam("b_id"))
    .values(attempt_count=_JOBS.c.attempt_count + 1)
)
