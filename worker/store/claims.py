"""Claims: who is sending a job, for how long, and what the attempt came to.

A claim is one conditional ``UPDATE … RETURNING``: a job is taken only when
it is queued and due, or when its sender's lease ran out (the sender died).
Each claim has its own id; the lease is renewed while the sender lives, and
every later write of the claim (renew, give back, record) is conditional on
that id, so a writer that lost its lease never touches the new owner's
record. Sends are counted at the claim: a job whose outcome never gets
recorded still runs out of sends.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import Connection, Update, update

from worker.store import claim_statements as sql
from worker.store.database import Database
from worker.store.events import EventEntry, insert_events
from worker.store.tables import Job, utcnow

# Server replies can be long; the columns are not. What is kept is cut here.
_TEXT_CHARS = 1000
_HINT_CHARS = 500
_SUMMARY_CHARS = 2000


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


@dataclass(frozen=True)
class NextStep:
    """Where the job stands after an attempt."""

    status: str  # queued | delivered | failed
    next_attempt_at: datetime | None = None
    # Recipients still to send (a partial delivery); None: as before.
    pending: Sequence[str] | None = None
    # The profile the next attempt goes through (None: the job's own), since when.
    via: str | None = None
    via_since: datetime | None = None


class Claims(Database):
    def claim(self, job_id: str, worker: str, lease: timedelta) -> Job | None:
        """Take the job for sending, or None if it is done, not due, or a live worker has it."""
        jobs = self.claim_many([job_id], worker, lease)
        return jobs[0] if jobs else None

    def claim_many(self, job_ids: Sequence[str], worker: str, lease: timedelta) -> list[Job]:
        """Take those of these jobs that ``claim`` would take, in one statement, in their order.

        They share one claim id (one lease to renew); every later write is
        still conditional on the job's id and that claim id.
        """
        if not job_ids:
            return []
        with self.transaction() as connection:
            rows = connection.execute(sql.CLAIM_MANY, _claim_params(worker, lease, b_ids=job_ids))
            claimed = {row.id: Job(**row._mapping) for row in rows}
        return [claimed[job_id] for job_id in dict.fromkeys(job_ids) if job_id in claimed]

    def claim_with_queued(
        self, job_id: str, worker: str, lease: timedelta, *, limit: int
    ) -> list[Job]:
        """``claim``, and with the job up to ``limit - 1`` others of its profile and priority
        that are queued and due, oldest first (``claim_many``).

        The job itself comes first when it was taken. The others' own task
        messages then find them taken and do nothing: under a backlog, one
        task sends several jobs over one connection and records them at once.
        They are looked up before the claim, outside its transaction (a SQLite
        read that turns into a write can fail where a write waits), and the
        claim checks each again; when there is nothing to take, nothing is
        written.
        """
        if limit <= 1:
            return self.claim_many([job_id], worker, lease)
        now = utcnow()
        params = {"b_id": job_id, "b_now": now, "b_due": now + sql.EARLY, "b_limit": limit - 1}
        with self.transaction() as connection:
            rows = connection.execute(sql.CLAIMABLE_WITH_QUEUED, params).all()
        # A union keeps no order: the job itself first, then the oldest.
        found = sorted(rows, key=lambda row: (row.id != job_id, row.created_at))
        return self.claim_many([row.id for row in found], worker, lease)

    def renew(self, claim_ids: Sequence[str], lease: timedelta) -> int:
        """Extend the leases of these claims (one statement); how many were still ours."""
        if not claim_ids:
            return 0
        now = utcnow()
        with self.transaction() as connection:
            result = connection.execute(
                update(sql.JOBS)
                .where(sql.JOBS.c.claim_id.in_(claim_ids), sql.JOBS.c.status == "sending")
                .values(lease_until=now + lease)
            )
        return int(result.rowcount)

    def reschedule(self, job_id: str, claim_id: str, not_before: datetime) -> None:
        """Give a claimed job back without an attempt or a send (rate limited, mailbox busy)."""
        with self.transaction() as connection:
            connection.execute(
                update(sql.JOBS)
                .where(sql.JOBS.c.id == job_id, sql.JOBS.c.claim_id == claim_id)
                .where(sql.JOBS.c.status == "sending")
                .values(
                    status="queued",
                    sends=sql.JOBS.c.sends - 1,
                    next_attempt_at=not_before,
                    worker=None,
                    lease_until=None,
                    claim_id=None,
                    updated_at=utcnow(),
                )
            )

    def record_attempt(
        self,
        job_id: str,
        claim_id: str,
        record: AttemptRecord,
        *,
        number: int,
        step: NextStep,
        events: Sequence[EventEntry] = (),
    ) -> bool:
        """Write attempt ``number`` (and its events) and move the job on, in one transaction.

        Plain INSERTs and one conditional UPDATE: this runs once per message.
        False when the claim was lost: the attempt is kept as history (its
        events too: they happened), but the job's state belongs to its new owner.
        """
        entry = AttemptEntry(job_id, claim_id, record, number, step, tuple(events))
        with self.transaction() as connection:
            _insert_attempts(connection, [entry])
            owned = connection.execute(_move_on(step), _move_on_params(entry))
            if owned.rowcount != 1:
                connection.execute(sql.COUNT_ATTEMPT, {"b_id": job_id})
                return False
        return True

    def record_attempts(self, entries: Sequence[AttemptEntry]) -> list[bool]:
        """``record_attempt`` for several jobs (a batch), in one transaction when all are ours.

        If any claim was lost, nothing of that transaction stays and each
        entry is recorded on its own, so each one's answer is exact.
        """
        if not entries:
            return []
        try:
            with self.transaction() as connection:
                _insert_attempts(connection, entries)
                for statement, group in _by_statement(entries):
                    moved = _execute_many(connection, statement, group)
                    if moved != len(group):
                        raise _ClaimLost
        except _ClaimLost:
            return [
                self.record_attempt(
                    e.job_id, e.claim_id, e.record, number=e.number, step=e.step, events=e.events
                )
                for e in entries
            ]
        return [True] * len(entries)


@dataclass(frozen=True)
class AttemptEntry:
    """One job's attempt, as ``record_attempts`` writes it."""

    job_id: str
    claim_id: str
    record: AttemptRecord
    number: int
    step: NextStep
    # What the attempt meant for each recipient, when it settled something (delivery.events).
    events: tuple[EventEntry, ...] = ()


class _ClaimLost(Exception):
    """A batch's UPDATE found a job no longer ours: the batch is recorded one by one."""


def _insert_attempts(connection: Connection, entries: Sequence[AttemptEntry]) -> list[int]:
    """The attempts and their recipients' replies: two statements, whatever their number."""
    rows = [_attempt_row(e.job_id, e.number, e.record) for e in entries]
    if len(rows) == 1:
        ids = [connection.execute(sql.INSERT_ATTEMPT, rows[0]).scalar_one()]
    else:  # one multi-row INSERT; its rows come back in any order
        inserted = connection.execute(sql.INSERT_ATTEMPTS, rows)
        id_of = {(row.job_id, row.number): row.id for row in inserted}
        ids = [id_of[e.job_id, e.number] for e in entries]
    recipients = [
        {
            "attempt_id": attempt_id,
            "address": _cut(r.address, 320),
            "accepted": r.accepted,
            "smtp_code": r.code,
            "enhanced_code": _cut(r.enhanced_code, 16),
            "text": _cut(r.text, _TEXT_CHARS),
            "outcome": r.kind,
        }
        for attempt_id, entry in zip(ids, entries, strict=True)
        for r in entry.record.outcome.recipients
    ]
    if recipients:
        connection.execute(sql.INSERT_RECIPIENTS, recipients)
    insert_events(connection, [event for entry in entries for event in entry.events])
    return ids


def _move_on(step: NextStep) -> Update:
    return sql.MOVE_ON if step.pending is None else sql.MOVE_ON_PENDING


def _move_on_params(entry: AttemptEntry) -> dict[str, object]:
    record, step, result = entry.record, entry.step, entry.record.outcome
    finished = step.status in ("delivered", "failed")
    return {
        "b_id": entry.job_id,
        "b_claim": entry.claim_id,
        "b_status": step.status,
        "b_next": step.next_attempt_at,
        "b_pending": list(step.pending) if step.pending is not None else None,
        "b_ended": record.ended_at,
        "b_finished": record.ended_at if finished else None,
        "b_outcome": result.kind if finished else None,
        "b_outcome_text": _cut(result.summary(), _SUMMARY_CHARS) if finished else None,
        "b_via": step.via,
        "b_via_since": step.via_since,
    }


def _by_statement(
    entries: Sequence[AttemptEntry],
) -> list[tuple[Update, list[dict[str, object]]]]:
    groups: dict[Update, list[dict[str, object]]] = {}
    for entry in entries:
        groups.setdefault(_move_on(entry.step), []).append(_move_on_params(entry))
    return list(groups.items())


def _execute_many(connection: Connection, statement: Update, rows: list[dict[str, object]]) -> int:
    """Rows changed: one executemany where the driver counts them, else one by one."""
    if len(rows) > 1 and connection.dialect.supports_sane_multi_rowcount:
        return int(connection.execute(statement, rows).rowcount)
    return sum(int(connection.execute(statement, row).rowcount) for row in rows)


def _claim_params(worker: str, lease: timedelta, **ids: object) -> dict[str, object]:
    now = utcnow()
    return {
        **ids,
        "b_worker": _cut(worker, 200),
        "b_claim": uuid.uuid4().hex,
        "b_now": now,
        "b_due": now + sql.EARLY,
        "b_lease": now + lease,
    }


def _attempt_row(job_id: str, number: int, record: AttemptRecord) -> dict[str, object]:
    result = record.outcome
    return {
        "job_id": job_id,
        "number": number,
        "profile": record.profile,
        "started_at": record.started_at,
        "ended_at": record.ended_at,
        "worker": _cut(record.worker, 200),
        "outcome": result.kind,
        "phase": result.phase,
        "smtp_code": result.code,
        "enhanced_code": _cut(result.enhanced_code, 16),
        "text": _cut(result.text, _TEXT_CHARS),
        "hint": _cut(result.hint, _HINT_CHARS),
        "queue_id": _cut(result.queue_id, 200),
        "token_source": record.token_source,
        "token_seconds": record.token_seconds,
        "reused_connection": record.reused_connection,
        "duration_seconds": (record.ended_at - record.started_at).total_seconds(),
    }


def _cut(value: str | None, chars: int) -> str | None:
    if value is None or len(value) <= chars:
        return value
    return value[: chars - 1] + "…"
