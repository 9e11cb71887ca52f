"""Readiness: can this process reach the database, Redis and the broker right now?

The probe needs no key, so its answer names the part that does not answer and
nothing more: the reason (which may name a host and port) goes to the log.
"""

from __future__ import annotations

import logging

from sqlalchemy import text

from worker.errors import MailpipeError
from worker.queue import Producer
from worker.redis_adapter import redis_errors

log = logging.getLogger(__name__)

_BROKER_TIMEOUT_SECONDS = 2.0


def readiness(rt: Producer) -> list[str]:
    """One line per part that does not answer ("database: not answering"); empty when all do."""
    failing = []
    try:
        with rt.store.transaction() as connection:
            connection.execute(text("SELECT 1"))
    except MailpipeError as exc:
        failing.append(_down("database", f"{type(exc).__name__}: {exc}"))
    try:
        with redis_errors("redis"):
            rt.redis.ping()
    except MailpipeError as exc:
        failing.append(_down("redis", str(exc)))
    try:
        with rt.celery.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=_BROKER_TIMEOUT_SECONDS)
    except Exception as exc:  # kombu: any transport's error; only the type is logged
        failing.append(_down("broker", type(exc).__name__))
    return failing


def _down(part: str, reason: str) -> str:
    log.warning("not ready: %s: %s", part, reason)
    return f"{part}: not answering"
