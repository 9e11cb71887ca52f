"""Profile checks started from the console and run by a worker: the intake holds no secret.

``mailpipe serve`` is a producer: it has no client secret, password or key, so
it cannot walk a profile through its token and SMTP steps itself. It writes a
pending check to Redis and publishes ``mailpipe.check_profile`` with the
check's id (never the address, never a secret); a worker runs
``check_profile`` and writes each step back as it ends. The console's page
reads the record until it is done. Records expire after a day.
"""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from worker import redis_keys
from worker.errors import MailpipeError
from worker.faces.profile_check import Step, check_profile
from worker.queue import (
    CHECK_TASK,
    CRITICAL_QUEUE,
    BrokerUnavailableError,
    Producer,
    broker_errors,
)
from worker.runtime import Runtime

log = logging.getLogger(__name__)

KEEP_SECONDS = 86400


@dataclass
class CheckRun:
    """One check of one profile: who asked, and the steps a worker has reported so far."""

    id: str
    profile: str
    send_to: str | None
    by: str | None
    started_at: str
    done: bool = False
    steps: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.done and bool(self.steps) and all(s["ok"] for s in self.steps)


def start_check(
    rt: Producer, profile: str, *, send_to: str | None, by: str | None
) -> CheckRun | None:
    """Record a pending check and ask a worker to run it; None if the broker is unreachable."""
    run = CheckRun(
        id=secrets.token_hex(12),
        profile=profile,
        send_to=send_to,
        by=by,
        started_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    _save(rt, run)
    try:
        with broker_errors("a profile check"):
            rt.celery.send_task(
                CHECK_TASK, args=[run.id], argsrepr=repr((run.id,)), queue=CRITICAL_QUEUE
            )
    except BrokerUnavailableError as exc:
        log.warning("profile check %s not published: %s", run.id, exc)
        return None
    return run


def read_check(rt: Producer, check_id: str) -> CheckRun | None:
    raw = rt.redis.get(redis_keys.profile_check(check_id))
    if raw is None:
        return None
    return CheckRun(**json.loads(raw))


def run_check(rt: Runtime, check_id: str) -> CheckRun | None:
    """Walk the profile through its steps (a worker does this), recording each as it ends."""
    run = read_check(rt, check_id)
    if run is None or run.done:
        return run
    try:
        for step in check_profile(rt.credentials, run.profile, send_to=run.send_to):
            run.steps.append(asdict(step))
            _save(rt, run)
    except MailpipeError as exc:  # an unknown profile, a file that no longer loads
        run.steps.append(asdict(Step("profile", False, exc.message, exc.hint)))
    run.done = True
    _save(rt, run)
    return run


def _save(rt: Producer, run: CheckRun) -> None:
    rt.redis.set(redis_keys.profile_check(run.id), json.dumps(asdict(run)), ex=KEEP_SECONDS)
