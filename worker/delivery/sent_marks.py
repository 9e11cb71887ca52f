"""The server said 250: remember it in Redis before writing the database.

SMTP has no idempotency key. If recording an accepted send fails (the
database is down, the worker dies between the 250 and the commit), the job
would be claimed and sent again. So the outcome is first written to Redis
under the job's send number, outliving the lease; a later claim that finds
unrecorded sends reads their marks and records the outcome instead of
sending again. What remains is the gap between the server's 250 and this
one Redis write.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import redis

from worker import redis_keys
from worker.errors import UnavailableError
from worker.redis_adapter import redis_errors
from worker.transport import Outcome, outcome_from_json, outcome_json

log = logging.getLogger(__name__)


def mark(client: redis.Redis, job_id: str, send: int, outcome: Outcome, ttl_seconds: float) -> bool:
    """Keep an accepted send's outcome; False (logged) when Redis failed: no protection."""
    try:
        with redis_errors("send marks"):
            client.set(
                redis_keys.sent_mark(job_id, send),
                outcome_json(outcome),
                px=int(ttl_seconds * 1000),
            )
    except UnavailableError as exc:
        log.warning("job %s: could not mark send %d as accepted (%s)", job_id, send, exc)
        return False
    return True


def find(client: redis.Redis, job_id: str, sends: Sequence[int]) -> Outcome | None:
    """The latest accepted outcome among these unrecorded sends, if any was marked."""
    if not sends:
        return None
    try:
        with redis_errors("send marks"):
            values = client.mget([redis_keys.sent_mark(job_id, n) for n in sends])
    except UnavailableError as exc:
        log.warning("job %s: could not read send marks (%s); sending again", job_id, exc)
        return None
    found = [v for v in values if v is not None]
    if not found:
        return None
    return outcome_from_json(found[-1])
