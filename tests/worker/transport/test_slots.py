"""Connection slots per profile across workers, in the tests' own Redis."""

from __future__ import annotations

import logging

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from worker.credentials import Profile
from worker.errors import UnavailableError
from worker.transport import SessionError
from worker.transport.slots import ConnectionSlots, release, try_lease

KEY = "mailpipe:smtp_slots:p"


def profile(max_connections: int | None = 1) -> Profile:
    return Profile(
        name="p", provider="generic", host="h", port=587, security="starttls",
        from_email="a@example.test", auth="password", username="a",
        max_connections=max_connections,
    )  # fmt: skip


def now_ms(client: redis.Redis) -> int:
    seconds, micros = client.time()
    return int(seconds) * 1000 + int(micros) // 1000


def test_at_most_the_limit_of_leases_are_handed_out(
    slots: ConnectionSlots, redis_client: redis.Redis
) -> None:
    leases = [slots.try_acquire("p", 2) for _ in range(3)]
    assert leases[0] and leases[1] and leases[0] != leases[1]
    assert leases[2] is None
    assert slots.try_acquire("other", 2) is not None, "each profile has slots of its own"
    slots.release("p", leases[0])
    assert slots.try_acquire("p", 2) is not None, "a released slot is free again"


def test_a_lease_expires_after_lease_seconds_by_redis_clock(
    slots: ConnectionSlots, redis_client: redis.Redis
) -> None:
    assert slots.lease_ms == 30_000
    before = now_ms(redis_client)
    lease = slots.try_acquire("p", 1)
    after = now_ms(redis_client)
    expiry = redis_client.zscore(KEY, lease or "")
    assert expiry is not None
    assert before + 30_000 <= expiry <= after + 30_000
    assert 0 < redis_client.pttl(KEY) <= 30_000


def test_an_expired_lease_is_dropped_and_its_slot_taken(
    slots: ConnectionSlots, redis_client: redis.Redis
) -> None:
    redis_client.zadd(KEY, {"dead-worker": now_ms(redis_client) - 1})
    lease = slots.try_acquire("p", 1)
    assert lease is not None
    assert redis_client.zrange(KEY, 0, -1) == [lease.encode()]
    assert not slots.renew("p", "dead-worker"), "an expired lease cannot be renewed"


def test_renewing_pushes_the_expiry_on(slots: ConnectionSlots, redis_client: redis.Redis) -> None:
    lease = slots.try_acquire("p", 1) or ""
    redis_client.zadd(KEY, {lease: now_ms(redis_client) + 5})
    redis_client.pexpire(KEY, 5_000)
    before = now_ms(redis_client)
    assert slots.renew("p", lease) is True
    assert (redis_client.zscore(KEY, lease) or 0) >= before + 30_000
    assert redis_client.pttl(KEY) > 5_000


class Slots:
    """Stands in for ConnectionSlots: hands out ``lease`` or fails as told."""

    def __init__(self, lease: str | None = "lease-1", *, down: bool = False) -> None:
        self.lease, self.down = lease, down
        self.asked: list[tuple[str, int]] = []
        self.released: list[tuple[str, str]] = []

    def try_acquire(self, name: str, limit: int) -> str | None:
        self.asked.append((name, limit))
        if self.down:
            raise UnavailableError("connection slots of profile 'p': Redis unreachable")
        return self.lease

    def release(self, name: str, lease: str) -> None:
        if self.down:
            raise UnavailableError("connection slots of profile 'p': Redis unreachable")
        self.released.append((name, lease))


def test_no_cap_needs_no_lease() -> None:
    fake = Slots()
    assert try_lease(fake, profile(None)) == (True, None)  # type: ignore[arg-type]
    assert try_lease(None, profile(3)) == (True, None)
    assert fake.asked == []


def test_a_capped_profile_asks_for_a_slot_under_its_cap() -> None:
    fake = Slots()
    assert try_lease(fake, profile(3)) == (True, "lease-1")  # type: ignore[arg-type]
    assert fake.asked == [("p", 3)]
    assert try_lease(Slots(None), profile(3)) == (False, None)  # type: ignore[arg-type]


def test_slots_unreachable_is_a_transient_connect_error() -> None:
    with pytest.raises(SessionError) as caught:
        try_lease(Slots(down=True), profile(3))  # type: ignore[arg-type]
    error = caught.value
    assert (error.kind, error.phase) == ("transient", "connect")
    assert error.message == "connection slots of profile 'p': Redis unreachable"
    assert isinstance(error.__cause__, UnavailableError)


def test_release_gives_the_lease_back_and_lets_it_expire_when_redis_is_down(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake = Slots()
    release(fake, profile(3), "lease-1")  # type: ignore[arg-type]
    assert fake.released == [("p", "lease-1")]
    release(fake, profile(3), None)  # type: ignore[arg-type]
    release(None, profile(3), "lease-1")
    assert fake.released == [("p", "lease-1")]
    with caplog.at_level(logging.WARNING, logger="worker.transport.slots"):
        release(Slots(down=True), profile(3), "lease-1")  # type: ignore[arg-type]
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.WARNING, "profile p: could not release a connection slot")
    ]


def test_redis_down_is_unavailable_naming_the_profile() -> None:
    closed = redis.Redis(host="127.0.0.1", port=1, retry=Retry(NoBackoff(), 0))
    slots = ConnectionSlots(closed)
    for call in (
        lambda: slots.try_acquire("p", 1),
        lambda: slots.renew("p", "x"),
        lambda: slots.release("p", "x"),
    ):
        with pytest.raises(UnavailableError, match="connection slots of profile 'p'"):
            call()
    closed.close()
