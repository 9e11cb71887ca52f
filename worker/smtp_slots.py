"""A cap on SMTP connections per profile across every worker: a Redis semaphore with leases.

Microsoft 365 allows 3 concurrent SMTP connections per mailbox and answers the
4th with "432 4.3.2 Concurrent connections limit exceeded"; Celery's own rate
limits are per worker, so the cap lives in Redis. Each connection holds a lease
that expires on its own if its process dies; times come from Redis's clock so
workers with skewed clocks agree.
"""

from __future__ import annotations

import uuid

import redis

from worker import redis_keys

# KEYS[1] the slots key; ARGV: limit, lease ms, lease id. Returns 1 if taken.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
    redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
    redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
    return 1
end
return 0
"""

# Extends a lease we still hold; returns 0 if it had expired (and was taken).
_RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('ZSCORE', KEYS[1], ARGV[2]) then
    redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), ARGV[2])
    redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]))
    return 1
end
return 0
"""


class ConnectionSlots:
    """At most ``limit`` leases per profile, each expiring unless renewed."""

    def __init__(self, client: redis.Redis, *, lease_seconds: float = 300.0) -> None:
        self.redis = client
        self.lease_ms = int(lease_seconds * 1000)
        self._acquire = client.register_script(_ACQUIRE)
        self._renew = client.register_script(_RENEW)

    def try_acquire(self, profile: str, limit: int) -> str | None:
        """A lease id, or None when all ``limit`` slots are taken right now."""
        lease = uuid.uuid4().hex
        key = redis_keys.smtp_slots(profile)
        return lease if self._acquire(keys=[key], args=[limit, self.lease_ms, lease]) else None

    def renew(self, profile: str, lease: str) -> bool:
        """Keep a long-lived connection's lease; False if it had expired."""
        return bool(self._renew(keys=[redis_keys.smtp_slots(profile)], args=[self.lease_ms, lease]))

    def release(self, profile: str, lease: str) -> None:
        self.redis.zrem(redis_keys.smtp_slots(profile), lease)

    def in_use(self, profile: str) -> int:
        return int(self.redis.zcard(redis_keys.smtp_slots(profile)))
