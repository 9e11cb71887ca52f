"""What the operator console asks of the store: find jobs, retry, cancel, and who did what.

Retry and cancel are each one conditional ``UPDATE``: a job that changed
state meanwhile (a worker claimed it, another operator acted first) is left
alone and the caller is told so. Each action is recorded in the same
transaction as the change it made.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Insert,
    String,
    and_,
    cast,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.orm import load_only

from worker.store.database import Database
from worker.store.tables import ConsoleAction, Job, utcnow

# What a job's state reads as in the console: each maps to a condition on the table.
STATES = ("queued", "retrying", "sending", "delivered", "failed", "cancelled")
CANCELLED = "cancelled"  # the outcome of a job an operator cancelled (its status is failed)


@dataclass(frozen=True)
class JobQuery:
    """A search of the jobs list: the jobs one API key made (``made_by``), or every job."""

    made_by: str | None
    every_key: bool = False
    text: str = ""
    profile: str | None = None
    state: str | None = None
    priority: str | None = None
    since: datetime | None = None
    offset: int = 0
    limit: int = 50


@dataclass(frozen=True)
class Actor:
    """Who acts in the console: an API key's name (None without keys) and from where."""

    name: str | None
    address: str | None


class ConsoleOperations(Database):
    def job_profiles(self) -> list[str]:
        """Every profile any job was queued for (those no longer in the file too)."""
        with self.session() as session:
            return list(session.scalars(select(Job.profile).distinct().order_by(Job.profile)))

    def find_jobs(self, query: JobQuery) -> list[Job]:
        """Jobs matching the query, newest first, without their messages (a list needs none)."""
        conditions: list[ColumnElement[bool]] = []
        if not query.every_key:
            conditions.append(Job.api_key_name == query.made_by)
        if query.text.strip():
            conditions.append(_matching(query.text.strip()))
        if query.profile:
            conditions.append(Job.profile == query.profile)
        if query.state:
            conditions.append(_in_state(query.state))
        if query.priority:
            conditions.append(Job.priority == query.priority)
        if query.since:
            conditions.append(Job.created_at >= query.since)
        statement = (
            select(Job)
            .options(
                load_only(
                    Job.id,
                    Job.profile,
                    Job.status,
                    Job.priority,
                    Job.notification,
                    Job.recipients,
                    Job.attempt_count,
                    Job.created_at,
                    Job.finished_at,
                    Job.outcome,
                    Job.next_attempt_at,
                )
            )
            .where(*conditions)
            .order_by(Job.created_at.desc(), Job.id.desc())
            .offset(query.offset)
            .limit(query.limit)
        )
        with self.session() as session:
            return list(session.scalars(statement))

    def retry_failed(self, job_id: str, actor: Actor) -> bool:
        """Queue a failed job again with a new retry budget; False if it is not failed now.

        Every recipient is tried again (a job that reached some recipients
        counts as delivered, so a failed one reached none), through its own
        profile first, then its fallbacks as for a new job.
        """
        now = utcnow()
        values = {
            "status": "queued",
            "next_attempt_at": None,
            "finished_at": None,
            "outcome": None,
            "outcome_text": None,
            "pending": None,
            "via_profile": None,
            "via_since": None,
            "worker": None,
            "lease_until": None,
            "claim_id": None,
            "sends": Job.attempt_count,
            "retried_after": Job.attempt_count,
            "updated_at": now,
            "published_at": now,
        }
        return self._act(job_id, "failed", values, actor, "retry", now)

    def cancel_queued(self, job_id: str, actor: Actor) -> bool:
        """Give up on a queued job (not yet sent, or waiting for a retry); False if not queued.

        A job being sent right now is not queued: its attempt ends first.
        """
        now = utcnow()
        who = actor.name or "an operator"
        values = {
            "status": "failed",
            "outcome": CANCELLED,
            "finished_at": now,
            "updated_at": now,
            "next_attempt_at": None,
            "outcome_text": f"cancelled in the console by {who}",
        }
        return self._act(job_id, "queued", values, actor, "cancel", now)

    def _act(
        self,
        job_id: str,
        status: str,
        values: dict[str, Any],
        actor: Actor,
        action: str,
        now: datetime,
    ) -> bool:
        """Move a job that is in ``status`` on, and record who did it, in one transaction."""
        with self.session() as session:
            done = session.execute(
                update(Job)
                .where(Job.id == job_id, Job.status == status)
                .values(**values)
                .returning(Job.profile)
            ).first()
            if done is None:
                return False
            session.execute(_action(now, actor, action, done.profile, job_id))
        return True

    def record_action(
        self, actor: Actor, action: str, profile: str, *, job_id: str | None = None,
        detail: str = "",
    ) -> None:  # fmt: skip
        with self.session() as session:
            session.execute(_action(utcnow(), actor, action, profile, job_id, detail))

    def actions_for(self, job_id: str) -> list[ConsoleAction]:
        with self.session() as session:
            return list(
                session.scalars(
                    select(ConsoleAction)
                    .where(ConsoleAction.job_id == job_id)
                    .order_by(ConsoleAction.at, ConsoleAction.id)
                )
            )


def state_of(job: Job) -> str:
    """The job's state as the console shows it (one of STATES)."""
    if job.status == "queued" and job.attempt_count > 0:
        return "retrying"
    if job.status == "failed" and job.outcome == CANCELLED:
        return CANCELLED
    return job.status


def _in_state(state: str) -> ColumnElement[bool]:
    not_cancelled = or_(Job.outcome.is_(None), Job.outcome != CANCELLED)
    conditions: dict[str, ColumnElement[bool]] = {
        "queued": and_(Job.status == "queued", Job.attempt_count == 0),
        "retrying": and_(Job.status == "queued", Job.attempt_count > 0),
        "failed": and_(Job.status == "failed", not_cancelled),
        CANCELLED: and_(Job.status == "failed", Job.outcome == CANCELLED),
    }
    return conditions.get(state, Job.status == state)


def _matching(text: str) -> ColumnElement[bool]:
    """A job whose id starts with the text, or whose recipients or subject contain it."""
    pattern = "%" + text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    return or_(
        Job.id.startswith(text.lower(), autoescape=True),
        func.lower(cast(Job.recipients, String)).like(pattern, escape="\\"),
        func.lower(Job.notification["subject"].as_string()).like(pattern, escape="\\"),
    )


def _action(
    at: datetime, actor: Actor, action: str, profile: str, job_id: str | None, detail: str = ""
) -> Insert:
    return insert(ConsoleAction).values(
        at=at, actor=actor.name, address=actor.address, action=action, job_id=job_id,
        profile=profile, detail=detail,
    )  # fmt: skip
