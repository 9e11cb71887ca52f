"""The store: the database is the system of record (jobs, attempts, rotated refresh tokens).

The names below are imported on first use (PEP 562), so that importing one
module of the store (the tables, for a report) does not import them all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from providers.lazy import lazy_names

if TYPE_CHECKING:
    from worker.store.claims import AttemptEntry, AttemptRecord, NextStep
    from worker.store.console import CANCELLED, STATES, Actor, JobQuery, state_of
    from worker.store.database import Database, StoreUnavailableError, alembic_config
    from worker.store.events import CallbackWork, EventEntry
    from worker.store.jobs import Store
    from worker.store.keys import check_key, rotate_stored
    from worker.store.refresh_tokens import DatabaseRefreshTokenStore, last_rotation
    from worker.store.tables import (
        Attempt,
        AttemptRecipient,
        Callback,
        CallbackAttempt,
        ConsoleAction,
        Event,
        Job,
        RefreshToken,
        utcnow,
    )

# Each public name and the module that defines it.
_HOMES = {
    "CANCELLED": "worker.store.console",
    "STATES": "worker.store.console",
    "Actor": "worker.store.console",
    "ConsoleAction": "worker.store.tables",
    "JobQuery": "worker.store.console",
    "state_of": "worker.store.console",
    "Attempt": "worker.store.tables",
    "AttemptEntry": "worker.store.claims",
    "AttemptRecipient": "worker.store.tables",
    "AttemptRecord": "worker.store.claims",
    "Callback": "worker.store.tables",
    "CallbackAttempt": "worker.store.tables",
    "CallbackWork": "worker.store.events",
    "Database": "worker.store.database",
    "Event": "worker.store.tables",
    "EventEntry": "worker.store.events",
    "DatabaseRefreshTokenStore": "worker.store.refresh_tokens",
    "Job": "worker.store.tables",
    "NextStep": "worker.store.claims",
    "RefreshToken": "worker.store.tables",
    "Store": "worker.store.jobs",
    "StoreUnavailableError": "worker.store.database",
    "alembic_config": "worker.store.database",
    "check_key": "worker.store.keys",
    "last_rotation": "worker.store.refresh_tokens",
    "rotate_stored": "worker.store.keys",
    "utcnow": "worker.store.tables",
}

__all__ = [
    "CANCELLED",
    "STATES",
    "Actor",
    "Attempt",
    "AttemptEntry",
    "AttemptRecipient",
    "AttemptRecord",
    "Callback",
    "CallbackAttempt",
    "CallbackWork",
    "ConsoleAction",
    "Database",
    "DatabaseRefreshTokenStore",
    "Event",
    "EventEntry",
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


__getattr__, __dir__ = lazy_names(__name__, _HOMES)
