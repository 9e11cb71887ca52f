"""Sending limits shared through Redis, with an injectable clock."""

from __future__ import annotations

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.fakes.clock import Clock
from worker.credentials import Profile
from worker.delivery import RateLimiter
from worker.delivery.rate_limit import Limit, limits_of
from worker.errors import LimitsUnavailableError


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
    clock = Clock(1_800_000_000.0)
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
    limiter = RateLimiter(redis_client, clock=Clock(1_800_000_000.0))
    p = profile(recipients_per_day=100)
    assert limiter.take(p, 60) == 0.0
    assert limiter.take(p, 40) == 0.0
    wait = limiter.take(p, 1)
    assert 86_000 < wait <= 86_400 + 300


def test_a_refused_message_takes_nothing(redis_client: redis.Redis) -> None:
    limiter = RateLimiter(redis_client, clock=Clock(1_800_000_000.0))
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
    limiter = RateLimiter(redis_client, clock=Clock(1_800_000_000.0))
    p = profile(rate_per_minute=30)
    normal = [limiter.take(p, 1, share=0.8) for _ in range(30)]
    assert normal[:24] == [0.0] * 24, "80% of 30 a minute for a fan-out"
    assert all(wait > 0 for wait in normal[24:])
    high = [limiter.take(p, 1) for _ in range(7)]
    assert high[:6] == [0.0] * 6, "the page gets the 6 kept for it"
    assert high[6] > 0, "and then the whole limit holds for it too"


class Script:
    """Stands in for Redis: records what the rate script is asked, answers ``wait``."""

    def __init__(self, wait: str = "0") -> None:
        self.wait = wait
        self.calls: list[tuple[list[str], list[float | int]]] = []
        self.source = ""

    def register_script(self, source: str) -> Script:
        self.source = source
        return self

    def __call__(self, *, keys: list[str], args: list[float | int]) -> str:
        self.calls.append((keys, args))
        return self.wait


def test_the_script_gets_each_limits_window_bucket_share_and_cost() -> None:
    script = Script("12.5")
    limiter = RateLimiter(script, clock=lambda: 1_800_000_000.5)  # type: ignore[arg-type]
    p = profile(rate_per_minute=30, rate_per_day=2000, recipients_per_day=100)
    assert limiter.take(p, 7, share=0.8) == 12.5
    assert "HINCRBY" in script.source, "the script file is the one registered"
    ((keys, args),) = script.calls
    assert keys == ["mailpipe:rate:p:minute", "mailpipe:rate:p:day", "mailpipe:rate:p:recipients"]
    assert args == [1_800_000_000.5, 60, 1, 24, 1, 86400, 300, 1600, 1, 86400, 300, 80, 7]


def test_a_share_never_refuses_what_the_message_alone_costs() -> None:
    script = Script()
    limiter = RateLimiter(script, clock=lambda: 0.0)  # type: ignore[arg-type]
    assert limiter.take(profile(rate_per_minute=3, recipients_per_day=10), 9, share=0.1) == 0.0
    ((_, args),) = script.calls
    assert args == [0.0, 60, 1, 1, 1, 86400, 300, 9, 9]


def test_a_message_with_more_recipients_than_a_day_allows_waits_forever() -> None:
    script = Script()
    limiter = RateLimiter(script)  # type: ignore[arg-type]
    assert limiter.take(profile(recipients_per_day=10), 11) == float("inf")
    assert limiter.take(profile(rate_per_day=10), 11) == 0.0, "a message limit counts messages"
    assert limiter.take(profile(recipients_per_day=10), 10) == 0.0
    assert len(script.calls) == 2


def test_limits_of_a_profile() -> None:
    assert limits_of(profile()) == []
    assert limits_of(profile(rate_per_minute=30, rate_per_day=2000, recipients_per_day=100)) == [
        Limit("minute", 60, 1, 30, False),
        Limit("day", 86400, 300, 2000, False),
        Limit("recipients", 86400, 300, 100, True),
    ]


def test_redis_down_is_a_limits_error_naming_the_profile() -> None:
    closed = redis.Redis(host="127.0.0.1", port=1, retry=Retry(NoBackoff(), 0))
    with pytest.raises(LimitsUnavailableError, match="profile 'p': rate limits"):
        RateLimiter(closed).take(profile(rate_per_minute=30), 1)
    closed.close()
