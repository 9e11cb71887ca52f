"""The statements claims run for every message, built once.

Building a statement costs more than SQLAlchemy's compiled cache saves
(bench/RESULTS.md, profile), so each is built here at import.
"""

from __future__ import annotations

from datetime import timedelta
from typing import cast

from sqlalchemy import Table, bindparam, insert, or_, select, union_all, update

from worker.store.tables import Attempt, AttemptRecipient, Job

# A task message may arrive this much before its job is due (clock skew).
EARLY = timedelta(seconds=5)

JOBS = cast(Table, Job.__table__)
ATTEMPTS = cast(Table, Attempt.__table__)
RECIPIENTS = cast(Table, AttemptRecipient.__table__)
CLAIMABLE = (
    or_(
        JOBS.c.status == "queued",
        (JOBS.c.status == "sending") & (JOBS.c.lease_until < bindparam("b_now")),
    ),
    # A message that arrives early (clock skew, a stale copy) must not
    # jump a backoff or a rate limit.
    or_(
        JOBS.c.next_attempt_at.is_(None),
        JOBS.c.next_attempt_at <= bindparam("b_due"),
    ),
)
CLAIMED = {
    "status": "sending",
    "worker": bindparam("b_worker"),
    "claim_id": bindparam("b_claim"),
    "sends": JOBS.c.sends + 1,
    "lease_until": bindparam("b_lease"),
    "updated_at": bindparam("b_now"),
}
# One statement: UPDATE … RETURNING (SQLite ≥ 3.35, PostgreSQL).
CLAIM_MANY = (
    update(JOBS)
    .where(JOBS.c.id.in_(bindparam("b_ids", expanding=True)), *CLAIMABLE)
    .values(**CLAIMED)
    .returning(*JOBS.c)
)
# Other queued, due jobs of a job's profile and priority, oldest first
# (ix_jobs_queued_by_profile).
OWN = JOBS.alias("own")
QUEUED_WITH = (
    select(JOBS.c.id)
    .where(
        JOBS.c.profile
        == select(OWN.c.profile).where(OWN.c.id == bindparam("b_id")).scalar_subquery(),
        JOBS.c.priority
        == select(OWN.c.priority).where(OWN.c.id == bindparam("b_id")).scalar_subquery(),
        JOBS.c.status == "queued",
        or_(JOBS.c.next_attempt_at.is_(None), JOBS.c.next_attempt_at <= bindparam("b_now")),
        JOBS.c.id != bindparam("b_id"),
    )
    .order_by(JOBS.c.created_at)
    .limit(bindparam("b_limit"))
)
# The job if it can be claimed now, then the others: a task message whose job is
# done and that finds nothing else waiting costs one read, no write.
_QUEUED = QUEUED_WITH.add_columns(JOBS.c.created_at).subquery()
CLAIMABLE_WITH_QUEUED = union_all(
    select(JOBS.c.id, JOBS.c.created_at).where(JOBS.c.id == bindparam("b_id"), *CLAIMABLE),
    select(_QUEUED.c.id, _QUEUED.c.created_at),
)
INSERT_ATTEMPT = insert(ATTEMPTS).returning(ATTEMPTS.c.id)
INSERT_ATTEMPTS = insert(ATTEMPTS).returning(ATTEMPTS.c.id, ATTEMPTS.c.job_id, ATTEMPTS.c.number)
INSERT_RECIPIENTS = insert(RECIPIENTS)
MOVE_ON_VALUES = {
    "attempt_count": JOBS.c.attempt_count + 1,
    "status": bindparam("b_status"),
    "next_attempt_at": bindparam("b_next"),
    "worker": None,
    "lease_until": None,
    "claim_id": None,
    "updated_at": bindparam("b_ended"),
    "finished_at": bindparam("b_finished"),
    "outcome": bindparam("b_outcome"),
    "outcome_text": bindparam("b_outcome_text"),
    "via_profile": bindparam("b_via"),
    "via_since": bindparam("b_via_since"),
}
OWNED = (JOBS.c.id == bindparam("b_id"), JOBS.c.claim_id == bindparam("b_claim"))
MOVE_ON = update(JOBS).where(*OWNED).values(**MOVE_ON_VALUES)
MOVE_ON_PENDING = (
    update(JOBS).where(*OWNED).values(**MOVE_ON_VALUES, pending=bindparam("b_pending"))
)
COUNT_ATTEMPT = (
    update(JOBS)
    .where(JOBS.c.id == bindparam("b_id"))
    .values(attempt_count=JOBS.c.attempt_count + 1)
)
