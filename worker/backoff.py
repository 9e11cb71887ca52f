"""Retry delays: exponential backoff with full jitter (pure)."""

from __future__ import annotations

import random
from collections.abc import Callable


def retry_delay(
    attempt: int,
    *,
    base_seconds: float,
    max_seconds: float,
    random_fraction: Callable[[], float] = random.random,
) -> float:
    """Seconds before retry number ``attempt`` (1 = the first retry).

    Full jitter (AWS Architecture Blog, "Exponential Backoff And Jitter"): a
    uniform pick in [0, min(max, base * 2^(attempt-1))], so workers that failed
    together do not retry together.
    """
    ceiling = min(max_seconds, base_seconds * 2.0 ** max(attempt - 1, 0))
    return ceiling * random_fraction()


def schedule_ceiling(attempts: int, *, base_seconds: float, max_seconds: float) -> float:
    """The longest total wait across ``attempts`` tries (every jitter at its maximum)."""
    return sum(min(max_seconds, base_seconds * 2.0 ** (n - 1)) for n in range(1, attempts))
