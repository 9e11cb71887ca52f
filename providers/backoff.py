"""Retry delays: exponential backoff with full jitter (pure).

One function for every retry mailpipe schedules: token requests inside the
token endpoint, and job retries in the delivery service.
"""

from __future__ import annotations

import random
from collections.abc import Callable


def full_jitter(
    attempt: int,
    *,
    base_seconds: float,
    max_seconds: float,
    random_fraction: Callable[[], float] = random.random,
) -> float:
    """Seconds before retry number ``attempt`` (1 = the first retry).

    Full jitter (AWS Architecture Blog, "Exponential Backoff And Jitter"): a
    uniform pick in [0, min(max, base * 2^(attempt-1))], so clients that failed
    together do not retry together.
    """
    ceiling = min(max_seconds, base_seconds * 2.0 ** max(attempt - 1, 0))
    return ceiling * random_fraction()
