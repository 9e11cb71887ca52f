"""Sending limits shared through Redis, with an injectable clock."""

from __future__ import annotations

import redis

from worker.credentials import Profile
from worker.delivery import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def profile(**limits: int) -> Profile:
    return Profile(
        name="p",
        provider="generic",
        host="h",
        port=587,
        security="starttls",
        from_email="a@example.test",
        auth="password",
        username="a",
        **limits,  # type: ignore[arg-type]
    )


def test_forty_messages_on_a_thirty_per_minute_profile(redis_client: redis.Redis) -> None:
    clock = Clock()
    first_worker = RateLimiter(redis_client, clock=clock)
    second_worker = RateLimiter(redis_client, clock=clock)
    p = profile(rate_per_minute=30)
    waits = [(first_worker if i % 2 else second_worker).take(p, 1) for i in range(40)]
    assert waits[:30] == [0.0] * 30
    assert all(55 <= w <= 61 for w in waits[30:]), waits[30:]
    clock.now += 30
    assert first_worker.take(p, 1) > 0, "the window slides: still full after 30 s"
    clock.now += 31.5
    assert first_worker.take(p, 1) == 0.0


def test_recipients_per_day_counts_recipients(redis_client: redis.Redis) -> None:
    limiter = RateLimiter(redis_client, clock=Clock())
    p = profile(recipients_per_day=100)
    assert limiter.take(p, 60) == 0.0
    assert limiter.take(p, 40) == 0.0
    wait = limiter.take(p, 1)
    assert 86_000 < wait <= 86_400 + 300


def test_a_refused_message_takes_nothing(redis_client: redis.Redis) -> None:
    limiter = RateLimiter(redis_client, clock=Clock())
    p = profile(rate_per_minute=10, rate_per_day=2)
    assert limiter.take(p, 1) == 0.0
    assert limiter.take(p, 1) == 0.0
    assert limiter.take(p, 1) > 3600, "the day limit decides"


def test_profiles_without_limits_are_never_limited(redis_client: redis.Redis) -> None:
    limiter = RateLimiter(redis_client)
    assert all(limiter.take(profile(), 5) == 0.0 for _ in range(100))
    assert redis_client.keys("mailpipe:rate:*") == []


def test_normal_priority_fills_only_its_share_and_high_gets_the_rest(
    redis_client: redis.Redis,
) -> None:
    limiter = RateLimiter(redis_client, clock=Clock())
    p = profile(rate_per_minute=30)
    normal = [limiter.take(p, 1, share=0.8) for _ in range(30)]
    assert normal[:24] == [0.0] * 24, "80% of 30 a minute for a fan-out"
    assert all(wait > 0 for wait in normal[24:])
    high = [limiter.take(p, 1) for _ in range(7)]
    assert high[:6] == [0.0] * 6, "the page gets the 6 kept for it"
    assert high[6] > 0, "and then the whole limit holds for it too"
