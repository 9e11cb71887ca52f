"""How many batch messages one API key may queue a minute, across every ``serve`` process.

A batch's size is capped per request (MAILPIPE_API_MAX_BATCH_MESSAGES); this caps
what one key can make the fleet do over time
(MAILPIPE_API_BATCH_MESSAGES_PER_MINUTE), so one key cannot bury every other
key's pages under its fan-out. A fixed window of one minute in Redis, per key; a
refused batch gives its count back, so only what was queued counts.
"""

from __future__ import annotations

import math
import time

from worker import redis_keys
from worker.faces.http.keys import Caller
from worker.faces.http.problems import Problem
from worker.queue import Producer
from worker.redis_adapter import redis_errors

WINDOW_SECONDS = 60


def check_batch_rate(rt: Producer, who: Caller, count: int) -> None:
    """Count ``count`` messages against the caller's minute; 429 with Retry-After past it."""
    limit = rt.settings.api_batch_messages_per_minute
    now = time.time()
    window = int(now // WINDOW_SECONDS)
    key = redis_keys.api_batch_window(who.name or "-", window)
    with redis_errors("the API's batch limits"):
        pipe = rt.redis.pipeline(transaction=True)
        pipe.incrby(key, count)
        pipe.expire(key, 2 * WINDOW_SECONDS)
        used = int(pipe.execute()[0])
        if used <= limit:
            return
        rt.redis.decrby(key, count)
    wait = math.ceil(WINDOW_SECONDS - now % WINDOW_SECONDS)
    raise Problem(
        429,
        "Too many messages",
        f"this API key may queue {limit} batch messages a minute "
        f"(MAILPIPE_API_BATCH_MESSAGES_PER_MINUTE); try again in {wait} s",
        headers={"Retry-After": str(wait)},
    )
