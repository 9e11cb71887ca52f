"""Readiness: can this process reach the database, Redis and the broker right now?"""

from __future__ import annotations

from sqlalchemy import text

from worker.errors import MailpipeError
from worker.runtime import Producer

_BROKER_TIMEOUT_SECONDS = 2.0


def readiness(rt: Producer) -> list[str]:
    """One line per part that does not answer; empty when all do."""
    failing = []
    try:
        with rt.store.transaction() as connection:
            connection.execute(text("SELECT 1"))
    except MailpipeError as exc:
        failing.append(f"database: {exc}")
    try:
        rt.redis.ping()
    except Exception as exc:  # redis-py raises many types; only the type is shown
        failing.append(f"redis: {type(exc).__name__}")
    try:
        with rt.celery.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=_BROKER_TIMEOUT_SECONDS)
    except Exception as exc:  # kombu: any transport's error
        failing.append(f"broker: {type(exc).__name__}")
    return failing
