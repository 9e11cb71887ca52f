"""``/healthz`` and ``/readyz``: does the process answer, and can it reach what it needs?

Readiness asks the database, Redis and the broker right now. The probes need
no key, so an answer names the part that does not answer and nothing more:
the reason (which may name a host and port) goes to the log.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from sqlalchemy import text

from worker.errors import MailpipeError
from worker.faces.http import problems
from worker.faces.http.deps import intake
from worker.faces.http.schemas import Health
from worker.queue import BrokerUnavailableError, Producer, broker_errors
from worker.redis_adapter import redis_errors

log = logging.getLogger(__name__)

_BROKER_TIMEOUT_SECONDS = 2.0

router = APIRouter()


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    """Liveness: the process answers. Needs no key."""
    return Health(status="ok")


@router.get("/readyz", response_model=Health)
def readyz(request: Request) -> Health:
    """Readiness: the database, Redis and the broker answer. Needs no key."""
    failing = readiness(intake(request).runtime)
    if failing:
        raise problems.Problem(503, "Not ready", "; ".join(failing))
    return Health(status="ok")


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
        with broker_errors("readiness"), rt.celery.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=_BROKER_TIMEOUT_SECONDS)
    except BrokerUnavailableError as exc:
        failing.append(_down("broker", str(exc)))
    return failing


def _down(part: str, reason: str) -> str:
    log.warning("not ready: %s: %s", part, reason)
    return f"{part}: not answering"
