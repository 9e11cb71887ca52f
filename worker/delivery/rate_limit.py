"""Per-profile sending limits shared by every worker (Celery's rate_limit is per worker).

Each limit is a sliding window counted in time buckets in one Redis hash:
Microsoft 365 allows 30 messages a minute and 10,000 recipients a day per
mailbox, Google Workspace 2,000 messages in a rolling 24 hours. One Lua script
checks every limit of a profile and takes the message only if all allow it,
else says how long to wait. Normal-priority messages may fill only a share of
each limit (``rate_share_normal``); the rest is kept for ``high``, so a page
still goes out while a fan-out has used the mailbox's budget.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib.resources import files

import redis

from worker import redis_keys
from worker.credentials import Profile
from worker.errors import LimitsUnavailableError
from worker.redis_adapter import redis_errors

_TAKE = files("worker.delivery").joinpath("rate_limit_take.lua").read_text()


@dataclass(frozen=True)
class Limit:
    name: str
    window_seconds: int
    bucket_seconds: int
    limit: int
    per_recipient: bool = False


def limits_of(profile: Profile) -> list[Limit]:
    limits = []
    if profile.rate_per_minute:
        limits.append(Limit("minute", 60, 1, profile.rate_per_minute))
    if profile.rate_per_day:
        limits.append(Limit("day", 86400, 300, profile.rate_per_day))
    if profile.recipients_per_day:
        limits.append(Limit("recipients", 86400, 300, profile.recipients_per_day, True))
    return limits


class RateLimiter:
    """Takes one message's worth of every limit, or says how long to wait."""

    def __init__(self, client: redis.Redis, *, clock: Callable[[], float] = time.time) -> None:
        self._take = client.register_script(_TAKE)
        self._clock = clock

    def take(self, profile: Profile, recipients: int, *, share: float = 1.0) -> float:
        """0 when the message may go now (and is counted); else seconds to wait.

        ``share``: the part of each limit this message may fill (1.0 for high
        priority). ``inf`` when the message alone is more than a limit allows.
        """
        limits = limits_of(profile)
        if not limits:
            return 0.0
        if any(limit.per_recipient and recipients > limit.limit for limit in limits):
            return float("inf")
        args: list[float | int] = [self._clock()]
        for limit in limits:
            cost = recipients if limit.per_recipient else 1
            allowed = max(cost, math.floor(limit.limit * share))
            args += [limit.window_seconds, limit.bucket_seconds, allowed, cost]
        keys = [redis_keys.rate(profile.name, limit.name) for limit in limits]
        with redis_errors(f"profile '{profile.name}': rate limits", LimitsUnavailableError):
            return float(self._take(keys=keys, args=args))
