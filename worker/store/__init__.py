"""The store: the database is the system of record (jobs, attempts, rotated refresh tokens)."""

from worker.store.claims import AttemptEntry, AttemptRecord, NextStep
from worker.store.console import CANCELLED, STATES, Actor, JobQuery, state_of
from worker.store.database import Database, StoreUnavailableError, alembic_config
from worker.store.jobs import Store
from worker.store.keys import check_key, rotate_stored
from worker.store.refresh_tokens import DatabaseRefreshTokenStore, last_rotation
from worker.store.tables import (
    Attempt,
    AttemptRecipient,
    ConsoleAction,
    Job,
    RefreshToken,
    utcnow,
)

__all__ = [
    "CANCELLED",
    "STATES",
    "Actor",
    "Attempt",
    "AttemptEntry",
    "AttemptRecipient",
    "AttemptRecord",
    "ConsoleAction",
    "Database",
    "DatabaseRefreshTokenStore",
    "Job",
    "JobQuery",
    "NextStep",
    "RefreshToken",
    "Store",
    "StoreUnavailableError",
    "alembic_config",
    "check_key",
    "last_rotation",
    "rotate_stored",
    "state_of",
    "utcnow",
]
