"""What the sweep must publish again: jobs whose task message is missing, never duplicates.

Three cases, each with its own evidence that no message is in flight:

- waiting in the database: queued, due, and not published since it became due
  (a delay longer than the broker should hold, or a publish that failed);
- abandoned: claimed by a sender whose lease ran out (it died mid-send) and
  not published since;
- lost by the broker: published, but fewer messages wait on the queue than
  jobs that should have one there (a broker restart without its data). Only
  that many are republished, oldest first, so a long backlog (messages slow,
  not lost) gets no duplicates. A batch message carries many jobs, so jobs
  published in batches count as lost only once their queue is empty.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from sqlalchemy import and_, func, or_, select

from worker.store.database import Database
from worker.store.tables import Job

Stale = list[tuple[str, str]]  # (job id, priority)


class Sweeps(Database):
    def unpublished_jobs(self, now: datetime, *, grace: timedelta, limit: int = 500) -> Stale:
        """Jobs that need a message and have none: waiting in the database, or abandoned."""
        due = or_(Job.next_attempt_at.is_(None), Job.next_attempt_at <= now)
        waiting = and_(
            Job.status == "queued",
            due,
            or_(Job.published_at.is_(None), Job.published_at < Job.next_attempt_at),
        )
        abandoned = and_(
            Job.status == "sending",
            Job.lease_until < now,
            # Published since the lease ended: a worker will claim it. Again
            # after the grace, in case that message was lost too.
            or_(
                Job.published_at.is_(None),
                Job.published_at < Job.lease_until,
                Job.published_at <= now - grace,
            ),
        )
        return self._ids(or_(waiting, abandoned), limit)

    def lost_jobs(
        self, now: datetime, *, grace: timedelta, waiting_by_priority: Mapping[str, int]
    ) -> Stale:
        """Queued jobs whose message the broker lost: more such jobs than messages waiting.

        ``waiting_by_priority``: how many messages wait on each priority's queue now.
        """
        should_wait = and_(
            Job.status == "queued",
            or_(Job.next_attempt_at.is_(None), Job.next_attempt_at <= now),
            Job.published_at <= now,
            or_(Job.next_attempt_at.is_(None), Job.published_at >= Job.next_attempt_at),
        )
        lost: Stale = []
        with self.session() as session:
            counts = {
                (row[0], bool(row[1])): int(row[2])
                for row in session.execute(
                    select(Job.priority, Job.batched, func.count())
                    .where(should_wait)
                    .group_by(Job.priority, Job.batched)
                ).all()
            }
        for (priority, batched), expected in counts.items():
            waiting = waiting_by_priority.get(priority, 0)
            # A batch's message may hold any number of its jobs: only an empty queue tells.
            missing = (expected if waiting == 0 else 0) if batched else expected - waiting
            if missing > 0:
                old = and_(
                    should_wait,
                    Job.priority == priority,
                    Job.batched == batched,
                    Job.published_at <= now - grace,
                )
                lost += self._ids(old, min(missing, 500), oldest_published=True)
        return lost

    def _ids(self, condition: object, limit: int, *, oldest_published: bool = False) -> Stale:
        order = Job.published_at if oldest_published else Job.created_at
        with self.session() as session:
            rows = session.execute(
                select(Job.id, Job.priority).where(condition).order_by(order).limit(limit)  # type: ignore[arg-type]
            )
            return [(row[0], row[1]) for row in rows]
