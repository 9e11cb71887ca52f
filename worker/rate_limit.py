"""Per-profile sending limits shared by every worker (Celery's rate_limit is per worker).

Each limit is a sliding window counted in time buckets in one Redis hash:
Microsoft 365 allows 30 messages a minute and 10,000 recipients a day per
mailbox, Google Workspace 2,000 messages in a rolling 24 hours. One Lua script
checks every limit of a profile and takes the message only if all allow it,
else says how long to wait.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import redis

from worker import redis_keys
from worker.errors import LimitsUnavailableError
from worker.profiles import Profile

# KEYS: one hash per limit. ARGV[1] = now (seconds); then per limit 4 values:
# window seconds, bucket seconds, limit, cost. Returns "0" when taken, else the
# seconds to wait (a string: Lua numbers would come back truncated).
_TAKE = """
local now = tonumber(ARGV[1])
local wait = 0
for i = 1, #KEYS do
    local base = 1 + (i - 1) * 4
    local window = tonumber(ARGV[base + 1])
    local bucket = tonumber(ARGV[base + 2])
    local limit = tonumber(ARGV[base + 3])
    local cost = tonumber(ARGV[base + 4])
    -- A bucket counts until its newest possible event is older than the window.
    local oldest = math.floor((now - window) / bucket)
    local fields = redis.call('HGETALL', KEYS[i])
    local total = 0
    local live = {}
    for j = 1, #fields, 2 do
        local b = tonumber(fields[j])
        if b < oldest then
            redis.call('HDEL', KEYS[i], fields[j])
        else
            total = total + tonumber(fields[j + 1])
            table.insert(live, {b, tonumber(fields[j + 1])})
        end
    end
    if total + cost > limit then
        table.sort(live, function(x, y) return x[1] < y[1] end)
        local need = total + cost - limit
        local freed = 0
        local until_free = window
        for _, entry in ipairs(live) do
            freed = freed + entry[2]
            if freed >= need then
                until_free = (entry[1] + 1) * bucket + window - now
                break
            end
        end
        if until_free > wait then wait = until_free end
    end
end
if wait > 0 then return tostring(wait) end
for i = 1, #KEYS do
    local base = 1 + (i - 1) * 4
    local window = tonumber(ARGV[base + 1])
    local bucket = tonumber(ARGV[base + 2])
    redis.call('HINCRBY', KEYS[i], math.floor(now / bucket), tonumber(ARGV[base + 4]))
    redis.call('EXPIRE', KEYS[i], math.ceil(window + bucket))
end
return "0"
"""


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

    def take(self, profile: Profile, recipients: int) -> float:
        """0 when the message may go now (and is counted); else seconds to wait.

        ``inf`` when the message alone is more than a limit allows: it never fits.
        """
        limits = limits_of(profile)
        if not limits:
            return 0.0
        if any(limit.per_recipient and recipients > limit.limit for limit in limits):
            return float("inf")
        args: list[float | int] = [self._clock()]
        for limit in limits:
            cost = recipients if limit.per_recipient else 1
            args += [limit.window_seconds, limit.bucket_seconds, limit.limit, cost]
        keys = [redis_keys.rate(profile.name, limit.name) for limit in limits]
        try:
            return float(self._take(keys=keys, args=args))
        except redis.RedisError as exc:
            raise LimitsUnavailableError(
                f"profile '{profile.name}': rate limits unavailable ({type(exc).__name__})"
            ) from exc
