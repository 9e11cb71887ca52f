"""A job's events and the callbacks that POST them: written, claimed, recorded.

An event is written with what made it (an attempt, in the attempt's
transaction; a bounce report, with the report's ``source`` so that a report
read twice makes no second event). Each event of a job with a
``callback_url`` gets a callback row in the same transaction; the callback
task claims it (a lease, like a job's claim), POSTs it and records the POST.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import Connection, Table, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from worker.store.database import Database
from worker.store.tables import Callback, CallbackAttempt, Event, Job, utcnow

# A bounce's diagnostic can be long and may quote the message: what is kept is cut.
_TEXT_CHARS = 1000

EVENTS = cast(Table, Event.__table__)
CALLBACKS = cast(Table, Callback.__table__)
CALLBACK_ATTEMPTS = cast(Table, CallbackAttempt.__table__)


@dataclass(frozen=True)
class EventEntry:
    """One event to write; ``callback_url``: also a callback to POST it there."""

    job_id: str
    event: str  # delivered | failed | bounced | delayed
    profile: str
    recipient: str | None
    at: datetime
    smtp_code: int | None = None
    enhanced_code: str | None = None
    text: str = ""
    source: str | None = None
    callback_url: str | None = None
    # Made here, so the caller can publish the callback's task without reading it back.
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    callback_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def callback(self) -> str | None:
        """The id of the callback this event makes, if the job has a callback URL."""
        return self.callback_id if self.callback_url else None


@dataclass(frozen=True)
class CallbackWork:
    """A claimed callback: where to POST which event, and how many POSTs went before."""

    id: str
    url: str
    created_at: datetime
    attempt_count: int
    event: Event


def insert_events(connection: Connection, entries: Sequence[EventEntry]) -> None:
    """The events and their callbacks, in the caller's transaction (two statements at most)."""
    if not entries:
        return
    connection.execute(insert(EVENTS), [_event_row(e) for e in entries])
    callbacks = [_callback_row(e) for e in entries if e.callback_url]
    if callbacks:
        connection.execute(insert(CALLBACKS), callbacks)


class Events(Database):
    def add_events(self, entries: Sequence[EventEntry]) -> list[EventEntry]:
        """Write each event unless its ``source`` was written before; those written."""
        written = []
        for entry in entries:
            try:
                with self.transaction() as connection:
                    insert_events(connection, [entry])
            except IntegrityError:  # the same report, read by another reader or again
                continue
            written.append(entry)
        return written

    def events_of(self, job_id: str) -> list[Event]:
        """The job's events, oldest first, each with its callback and that callback's POSTs."""
        with self.session() as session:
            events = session.scalars(
                select(Event).where(Event.job_id == job_id).order_by(Event.at, Event.id)
            ).all()
            ids = [e.id for e in events]
            callbacks = session.scalars(
                select(Callback)
                .where(Callback.event_id.in_(ids))
                .options(selectinload(Callback.attempts))
            ).all()
            session.expunge_all()
        by_event = {c.event_id: c for c in callbacks}
        for event in events:
            event.callback = by_event.get(event.id)  # type: ignore[attr-defined]
        return list(events)

    def job_callback_url(self, job_id: str) -> str | None:
        with self.session() as session:
            return session.scalar(select(Job.callback_url).where(Job.id == job_id))

    def claim_callback(self, callback_id: str, lease: timedelta) -> CallbackWork | None:
        """Take a pending, due callback no live worker holds; None otherwise."""
        now = utcnow()
        with self.transaction() as connection:
            row = connection.execute(
                update(CALLBACKS)
                .where(
                    CALLBACKS.c.id == callback_id,
                    CALLBACKS.c.status == "pending",
                    CALLBACKS.c.next_attempt_at <= now + timedelta(seconds=1),
                    or_(CALLBACKS.c.lease_until.is_(None), CALLBACKS.c.lease_until < now),
                )
                .values(lease_until=now + lease)
                .returning(
                    CALLBACKS.c.url,
                    CALLBACKS.c.created_at,
                    CALLBACKS.c.attempt_count,
                    CALLBACKS.c.event_id,
                )
            ).first()
        if row is None:
            return None
        with self.session() as session:
            event = session.get_one(Event, row.event_id)
            session.expunge(event)
        return CallbackWork(callback_id, row.url, row.created_at, row.attempt_count, event)

    def record_callback_post(
        self,
        callback_id: str,
        *,
        number: int,
        at: datetime,
        duration_seconds: float,
        http_status: int | None,
        error: str | None,
        status: str,
        next_attempt_at: datetime | None = None,
    ) -> None:
        """One POST and where the callback stands after it; the lease is given back."""
        finished = status != "pending"
        with self.transaction() as connection:
            connection.execute(
                insert(CALLBACK_ATTEMPTS),
                {
                    "callback_id": callback_id,
                    "number": number,
                    "at": at,
                    "http_status": http_status,
                    "error": _cut(error, _TEXT_CHARS),
                    "duration_seconds": duration_seconds,
                },
            )
            values: dict[str, object] = {
                "status": status,
                "attempt_count": number,
                "lease_until": None,
                "finished_at": at if finished else None,
            }
            if next_attempt_at is not None:
                values["next_attempt_at"] = next_attempt_at
            connection.execute(
                update(CALLBACKS).where(CALLBACKS.c.id == callback_id).values(**values)
            )

    def due_callbacks(self, now: datetime, *, grace: timedelta, limit: int = 500) -> list[str]:
        """Pending callbacks due for longer than ``grace`` and held by no one: their task
        message was lost (a retry's message arrives when it is due)."""
        with self.session() as session:
            return list(
                session.scalars(
                    select(Callback.id)
                    .where(
                        Callback.status == "pending",
                        Callback.next_attempt_at < now - grace,
                        or_(Callback.lease_until.is_(None), Callback.lease_until < now),
                    )
                    .order_by(Callback.next_attempt_at)
                    .limit(limit)
                ).all()
            )


def _event_row(entry: EventEntry) -> dict[str, object]:
    return {
        "id": entry.id,
        "job_id": entry.job_id,
        "event": entry.event,
        "profile": entry.profile,
        "recipient": _cut(entry.recipient, 320),
        "at": entry.at,
        "smtp_code": entry.smtp_code,
        "enhanced_code": _cut(entry.enhanced_code, 16),
        "text": _cut(entry.text, _TEXT_CHARS) or "",
        "source": _cut(entry.source, 400),
    }


def _callback_row(entry: EventEntry) -> dict[str, object]:
    return {
        "id": entry.callback_id,
        "event_id": entry.id,
        "url": entry.callback_url,
        "status": "pending",
        "created_at": entry.at,
        "next_attempt_at": entry.at,
        "lease_until": None,
        "attempt_count": 0,
        "finished_at": None,
    }


def _cut(value: str | None, chars: int) -> str | None:
    if value is None or len(value) <= chars:
        return value
    return value[: chars - 1] + "…"
