"""Retry delays (exponential backoff with full jitter, pure) and a token request's retry policy.

One function for every retry mailpipe schedules: token requests inside the
token endpoint, and job retries in the delivery service.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass


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


@dataclass(frozen=True)
class RetryPolicy:
    """How long one token request may keep trying before it gives up."""

    max_attempts: int = 4
    deadline_seconds: float = 20.0
    backoff_base_seconds: float = 0.5
    backoff_max_seconds: float = 8.0
    # A Retry-After longer than this is not waited out here: the error goes
    # back to the caller (with retry_after_seconds) to defer the job instead.
    retry_after_max_seconds: float = 10.0
