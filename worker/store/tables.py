"""The database tables: jobs (the outbox), their attempts, per-recipient results, refresh tokens.

The database is the system of record: a job is written here before its
message goes on the queue, and every attempt is kept. Changes go through
Alembic migrations (worker/store/migrations).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    false,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out, on SQLite (no time zones) and PostgreSQL alike."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    pass


_WITHOUT_API_KEY = text("api_key_name IS NULL")
_WITH_API_KEY = text("api_key_name IS NOT NULL")


class Job(Base):
    """One notification: what was asked, the built message, and where it stands."""

    __tablename__ = "jobs"
    __table_args__ = (
        # An incident system re-firing the same alert gets the first job back, and only
        # its own: a key is unique per profile and API key. Two partial indexes, because
        # NULLs never collide in a unique one and jobs made without a key (the CLI,
        # notify()) still share one key per profile.
        Index(
            "uq_jobs_idempotency_key_without_api_key",
            "profile",
            "idempotency_key",
            unique=True,
            sqlite_where=_WITHOUT_API_KEY,
            postgresql_where=_WITHOUT_API_KEY,
        ),
        Index(
            "uq_jobs_idempotency_key_per_api_key",
            "profile",
            "api_key_name",
            "idempotency_key",
            unique=True,
            sqlite_where=_WITH_API_KEY,
            postgresql_where=_WITH_API_KEY,
        ),
        Index("ix_jobs_status_next_attempt_at", "status", "next_attempt_at"),
        # The due jobs a worker takes along with its own (Claims.claim_with_queued).
        Index("ix_jobs_queued_by_profile", "profile", "priority", "status", "created_at"),
        # A bounce that lost its ENVID names its job by the returned Message-ID.
        Index("ix_jobs_message_id", "message_id"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    profile: Mapped[str] = mapped_column(String(64), index=True)
    # queued → sending → delivered | failed (sending → queued again for a retry);
    # delivered → bounced when a report says every recipient bounced
    status: Mapped[str] = mapped_column(String(16))
    priority: Mapped[str] = mapped_column(String(8))
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    # The name of the HTTP intake's API key that made the job (never the key itself);
    # None: made without one (the CLI, notify(), the relay, a keyless intake).
    api_key_name: Mapped[str | None] = mapped_column(String(64))
    notification: Mapped[dict[str, Any]] = mapped_column(JSON)
    sender: Mapped[str] = mapped_column(String(320))
    recipients: Mapped[list[str]] = mapped_column(JSON)
    message: Mapped[bytes] = mapped_column(LargeBinary)
    message_id: Mapped[str] = mapped_column(String(400))
    smtputf8: Mapped[bool] = mapped_column(Boolean, default=False)
    attempt_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # Not before this time (a retry's backoff, a rate limit); None: now.
    next_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # Last time a task message for this job was put on the broker.
    published_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # That message was a batch's (several job ids): the sweep counts it apart.
    batched: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # While status is "sending": who sends it, and until when the claim holds
    # (renewed while the worker is alive); claim_id is new at every claim.
    worker: Mapped[str | None] = mapped_column(String(200))
    lease_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    claim_id: Mapped[str | None] = mapped_column(String(32))
    # Claims that went on to send (counted at the claim, so a send whose record
    # was lost still counts): capped by retry_max_attempts.
    sends: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Recipients still to send after a delivery some refused for now; None: all.
    pending: Mapped[list[str] | None] = mapped_column(JSON)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # The fallback profile the next attempt goes through, and since when; None: ``profile``.
    via_profile: Mapped[str | None] = mapped_column(String(64))
    via_since: Mapped[datetime | None] = mapped_column(UtcDateTime)
    outcome: Mapped[str | None] = mapped_column(String(16))
    outcome_text: Mapped[str | None] = mapped_column(Text)
    # Attempts made before an operator last retried the failed job: the retry
    # budget (retry_max_attempts) counts from here.
    retried_after: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Where the job's events are POSTed (signed); None: nowhere, they are only recorded.
    callback_url: Mapped[str | None] = mapped_column(String(2000))

    attempts: Mapped[list[Attempt]] = relationship(
        back_populates="job", order_by="Attempt.number", cascade="all, delete-orphan"
    )


class Attempt(Base):
    """One try at sending a job, whatever its end."""

    __tablename__ = "attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    profile: Mapped[str] = mapped_column(String(64), index=True)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    ended_at: Mapped[datetime] = mapped_column(UtcDateTime)
    worker: Mapped[str] = mapped_column(String(200))
    # delivered | transient | auth_rejected | permanent (transport.OutcomeKind)
    outcome: Mapped[str] = mapped_column(String(16))
    phase: Mapped[str] = mapped_column(String(16))
    smtp_code: Mapped[int | None] = mapped_column(Integer)
    enhanced_code: Mapped[str | None] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(Text, default="")
    hint: Mapped[str | None] = mapped_column(Text)
    queue_id: Mapped[str | None] = mapped_column(String(200))
    # memory | redis | fresh | stale, or None (password, or a connection already open)
    token_source: Mapped[str | None] = mapped_column(String(8))
    token_seconds: Mapped[float | None] = mapped_column(Float)
    reused_connection: Mapped[bool] = mapped_column(Boolean, default=False)
    duration_seconds: Mapped[float] = mapped_column(Float)

    job: Mapped[Job] = relationship(back_populates="attempts")
    recipients: Mapped[list[AttemptRecipient]] = relationship(
        cascade="all, delete-orphan", order_by="AttemptRecipient.id"
    )


class AttemptRecipient(Base):
    """What the server said about one recipient in one attempt."""

    __tablename__ = "attempt_recipients"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    attempt_id: Mapped[int] = mapped_column(
        ForeignKey("attempts.id", ondelete="CASCADE"), index=True
    )
    address: Mapped[str] = mapped_column(String(320))
    accepted: Mapped[bool] = mapped_column(Boolean)
    smtp_code: Mapped[int | None] = mapped_column(Integer)
    enhanced_code: Mapped[str | None] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(Text, default="")
    outcome: Mapped[str] = mapped_column(String(16))


class Event(Base):
    """Something that happened to one recipient of a job: delivered, failed, bounced, delayed."""

    __tablename__ = "events"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    # delivered | failed | bounced | delayed
    event: Mapped[str] = mapped_column(String(16))
    profile: Mapped[str] = mapped_column(String(64))
    recipient: Mapped[str | None] = mapped_column(String(320))
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    smtp_code: Mapped[int | None] = mapped_column(Integer)
    enhanced_code: Mapped[str | None] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(Text, default="")
    # What the event came from, unique where it can be seen twice (a report read by two
    # readers); None: made once, where the delivery decided.
    source: Mapped[str | None] = mapped_column(String(400), unique=True)


class Callback(Base):
    """One event to POST to a job's callback URL, until the receiver takes it or 24 h pass."""

    __tablename__ = "callbacks"
    __table_args__ = (Index("ix_callbacks_status_next_attempt_at", "status", "next_attempt_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    event_id: Mapped[str] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(String(2000))
    # pending → delivered | gone (the receiver answered 410) | expired (24 h passed)
    # | refused (MAILPIPE_CALLBACK_ALLOWED does not allow its target)
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # A worker posting it holds it until then; a dead one's callback is taken over after.
    lease_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    attempt_count: Mapped[int] = mapped_column(Integer, default=0)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    attempts: Mapped[list[CallbackAttempt]] = relationship(
        cascade="all, delete-orphan", order_by="CallbackAttempt.number"
    )


class CallbackAttempt(Base):
    """One POST of a callback: the receiver's status, or why there was none."""

    __tablename__ = "callback_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    callback_id: Mapped[str] = mapped_column(
        ForeignKey("callbacks.id", ondelete="CASCADE"), index=True
    )
    number: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    http_status: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    duration_seconds: Mapped[float] = mapped_column(Float)


class BounceCursor(Base):
    """How far a bounce mailbox has been read.

    IMAP: its UIDVALIDITY and the last UID handled. Graph: the delta link to call
    next (an ``@odata.nextLink`` or the final ``@odata.deltaLink``), with
    UIDVALIDITY and UID left at 0.
    """

    __tablename__ = "bounce_cursors"

    mailbox: Mapped[str] = mapped_column(String(400), primary_key=True)
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    last_uid: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    delta_link: Mapped[str | None] = mapped_column(Text)


class RefreshToken(Base):
    """The newest rotated refresh token of a profile, Fernet-encrypted."""

    __tablename__ = "refresh_tokens"

    profile: Mapped[str] = mapped_column(String(64), primary_key=True)
    seed_digest: Mapped[str] = mapped_column(String(32))
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class KeyCheck(Base):
    """A known value encrypted with the secret key, so a wrong key is caught at start.

    A valid Fernet key that is not the one the stored tokens were encrypted
    with would otherwise fail silently: cached tokens would read as misses and
    a rotated refresh token as absent.
    """

    __tablename__ = "key_check"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class ConsoleAction(Base):
    """What an operator did in the console (retry, cancel, check, send a test), and who."""

    __tablename__ = "console_actions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    # The API key's name, or None on an intake without keys (loopback only).
    actor: Mapped[str | None] = mapped_column(String(200))
    # Where the request came from (the client's address as the server saw it).
    address: Mapped[str | None] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(16))  # retry | cancel | check | send-test
    job_id: Mapped[str | None] = mapped_column(String(32), index=True)
    profile: Mapped[str] = mapped_column(String(64))
    detail: Mapped[str] = mapped_column(Text, default="")
