"""What the bounce reader keeps: how far each mailbox was read, and the jobs reports name."""

from __future__ import annotations

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from worker.store.database import Database
from worker.store.tables import BounceCursor, Event, Job, utcnow


class Bounces(Database):
    def cursor(self, mailbox: str) -> tuple[int, int] | None:
        """The mailbox's (UIDVALIDITY, last UID handled), or None before its first read."""
        with self.session() as session:
            row = session.get(BounceCursor, mailbox)
            return (row.uidvalidity, row.last_uid) if row else None

    def advance_cursor(self, mailbox: str, uidvalidity: int, last_uid: int) -> None:
        """Remember the last UID handled; never moves back (two readers, one slower)."""
        try:
            self._advance_cursor(mailbox, uidvalidity, last_uid)
        except IntegrityError:
            # Another reader wrote the mailbox's first cursor between our read and our
            # insert: the row exists now, so this is an update.
            self._advance_cursor(mailbox, uidvalidity, last_uid)

    def _advance_cursor(self, mailbox: str, uidvalidity: int, last_uid: int) -> None:
        with self.session() as session:
            row = session.get(BounceCursor, mailbox, with_for_update=True)
            if row is None:
                session.add(BounceCursor(mailbox=mailbox, uidvalidity=uidvalidity,
                                         last_uid=last_uid, updated_at=utcnow()))  # fmt: skip
            elif row.uidvalidity != uidvalidity or last_uid > row.last_uid:
                row.uidvalidity, row.last_uid, row.updated_at = uidvalidity, last_uid, utcnow()

    def delta_link(self, mailbox: str) -> str | None:
        """The Graph mailbox's delta link to call next, or None before its first read."""
        with self.session() as session:
            row = session.get(BounceCursor, mailbox)
            return row.delta_link if row else None

    def advance_delta_link(self, mailbox: str, expected: str | None, link: str) -> bool:
        """Move a Graph cursor from ``expected`` to ``link``; False if another reader moved it.

        Delta links cannot be ordered the way UIDs can: a reader that finds the
        cursor moved by another (two readers, one slower) stops rather than send
        it back; what it read is read again at worst, and events are not doubled.
        """
        try:
            return self._advance_delta_link(mailbox, expected, link)
        except IntegrityError:
            return False  # another reader wrote the first cursor meanwhile

    def _advance_delta_link(self, mailbox: str, expected: str | None, link: str) -> bool:
        # One conditional UPDATE: atomic on SQLite too, where FOR UPDATE is ignored.
        was = BounceCursor.delta_link
        with self.transaction() as connection:
            moved = connection.execute(
                update(BounceCursor)
                .where(BounceCursor.mailbox == mailbox,
                       was.is_(None) if expected is None else was == expected)
                .values(delta_link=link, updated_at=utcnow())
            )  # fmt: skip
            if moved.rowcount == 1:
                return True
            if expected is not None:
                return False
            connection.execute(
                insert(BounceCursor).values(mailbox=mailbox, uidvalidity=0, last_uid=0,
                                            delta_link=link, updated_at=utcnow())
            )  # fmt: skip
            return True

    def job_for_report(self, envelope_id: str | None, message_id: str | None) -> Job | None:
        """The job a report names: by its envelope id (the job id), else by Message-ID."""
        with self.session() as session:
            job = session.get(Job, envelope_id) if envelope_id else None
            if job is None and message_id:
                job = session.scalars(select(Job).where(Job.message_id == message_id)).first()
            if job is not None:
                session.expunge(job)
            return job

    def mark_bounced(self, job_id: str) -> bool:
        """A delivered job whose every recipient bounced becomes ``bounced``; True if it did."""
        with self.session() as session:
            job = session.get(Job, job_id)
            if job is None or job.status != "delivered":
                return False
            bounced = set(
                session.scalars(
                    select(Event.recipient).where(Event.job_id == job_id, Event.event == "bounced")
                ).all()
            )
            if not {r.lower() for r in job.recipients} <= {b.lower() for b in bounced if b}:
                return False
            session.execute(
                update(Job)
                .where(Job.id == job_id, Job.status == "delivered")
                .values(status="bounced", updated_at=utcnow())
            )
            return True
