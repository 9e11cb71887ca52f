"""Jobs and their attempts: the outbox every message goes through.

Every state change is one short transaction; claiming and recording are in
``claims``, what the sweep republishes in ``sweeps``.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from worker.store.bounces import Bounces
from worker.store.claim_statements import JOBS
from worker.store.claims import Claims
from worker.store.console import ConsoleOperations
from worker.store.events import Events
from worker.store.sweeps import Sweeps
from worker.store.tables import Attempt, Job, utcnow

# Built once: its parameters come with each job (SQLAlchemy caches its compiled form).
_INSERT_JOB = insert(JOBS)


class Store(Claims, Sweeps, ConsoleOperations, Events, Bounces):
    """Jobs and attempts, behind a small API the tasks, the faces and the CLI share."""

    # -- jobs ----------------------------------------------------------------

    def add_job(self, job: Job, *, idempotency_window: timedelta) -> tuple[str, bool]:
        """Insert ``job``; with a known idempotency key, return the first job's id instead.

        A key is known per profile and API key: one key's jobs never answer another's.

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
                    select(Job).where(*_same_owner(job), Job.idempotency_key == job.idempotency_key)
                ).first()
                if existing is not None and existing.created_at > now - idempotency_window:
                    return existing.id, False
                if existing is not None:
                    existing.idempotency_key = None
        try:
            # One Core INSERT, not the ORM's unit of work: every notification runs it.
            with self.transaction() as connection:
                connection.execute(_INSERT_JOB, _column_values(job))
        except IntegrityError:
            # Another producer inserted the same key between our read and write.
            with self.session() as session:
                first = session.scalars(
                    select(Job.id).where(
                        *_same_owner(job), Job.idempotency_key == job.idempotency_key
                    )
                ).one()
            return first, False
        return job.id, True

    def add_jobs(
        self, jobs: Sequence[Job], *, idempotency_window: timedelta
    ) -> list[tuple[str, bool]]:
        """Insert many jobs in one transaction (notify_many); (id, created) in order, as add_job.

        A job whose idempotency key names a job younger than the window gets
        that job's id and is not inserted; only new jobs are marked batched.
        """
        now = utcnow()
        keys = [job.idempotency_key for job in jobs if job.idempotency_key is not None]
        owners = {(job.profile, job.api_key_name) for job in jobs}
        if len(keys) != len(set(keys)) or len(owners) > 1:
            raise ValueError("one profile and API key per batch, and no idempotency key twice")
        try:
            with self.session() as session:
                existing = {
                    row.idempotency_key: row
                    for row in session.scalars(
                        select(Job).where(*_same_owner(jobs[0]), Job.idempotency_key.in_(keys))
                    )
                } if keys else {}  # fmt: skip
                ids: list[tuple[str, bool]] = []
                for job in jobs:
                    known = existing.get(job.idempotency_key)
                    if known is not None and known.created_at > now - idempotency_window:
                        ids.append((known.id, False))
                        continue
                    if known is not None:
                        known.idempotency_key = None
                        session.flush()  # release the key before the new job takes it
                    job.id = job.id or uuid.uuid4().hex
                    job.created_at = job.updated_at = job.published_at = now
                    job.batched = True
                    session.add(job)
                    ids.append((job.id, True))
        except IntegrityError:
            # A producer inserted one of the keys meanwhile: one at a time, as add_job does.
            return [self.add_job(job, idempotency_window=idempotency_window) for job in jobs]
        return ids

    def mark_published(
        self, job_ids: Sequence[str], *, at: datetime | None = None, batched: bool = False
    ) -> None:
        """Note when the jobs' task messages become deliverable (now, or a countdown's end)."""
        with self.session() as session:
            session.execute(
                update(Job)
                .where(Job.id.in_(job_ids))
                .values(published_at=at or utcnow(), batched=batched)
            )

    def mark_unpublished(self, job_ids: Sequence[str]) -> None:
        """The jobs' messages never reached the broker: the next sweep publishes them."""
        with self.session() as session:
            session.execute(update(Job).where(Job.id.in_(job_ids)).values(published_at=None))

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


def _same_owner(job: Job) -> tuple[ColumnElement[bool], ...]:
    """Where the jobs whose idempotency keys ``job``'s could repeat are: its profile and API key."""
    if job.api_key_name is None:
        return Job.profile == job.profile, Job.api_key_name.is_(None)
    return Job.profile == job.profile, Job.api_key_name == job.api_key_name


def _column_values(job: Job) -> dict[str, object]:
    """The columns a new job sets; the ones left unset take their column defaults."""
    values = {column.key: getattr(job, column.key) for column in JOBS.columns}
    return {key: value for key, value in values.items() if value is not None}
