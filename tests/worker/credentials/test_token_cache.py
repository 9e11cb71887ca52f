"""The shared token cache: one token request per lifetime, whatever the number of processes."""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import redis
from cryptography.fernet import MultiFernet
from pydantic import SecretStr
from redis.backoff import NoBackoff
from redis.retry import Retry

from providers import ClientCredentialsGrant, PermanentProviderError, RefreshTokenGrant, RetryPolicy
from tests.fakes.idp import FakeIdP, hang, issue, reply, slowly
from tests.leaks import SecretRegistry
from tests.support import free_port
from tests.worker.credentials import token_child
from worker import redis_keys
from worker.credentials.tokens import TokenCache
from worker.errors import TokenCacheError
from worker.store import DatabaseRefreshTokenStore, RefreshToken, Store

CacheFactory = Callable[..., TokenCache]


@pytest.fixture
def make_cache(redis_url: str, fernet: MultiFernet) -> Iterator[CacheFactory]:
    """Each cache stands for one worker process: its own memory, Redis shared."""
    made: list[TokenCache] = []
    http = httpx.Client(timeout=5.0)

    def make(**options: object) -> TokenCache:
        options.setdefault("policy", RetryPolicy(max_attempts=1))
        cache = TokenCache(redis.Redis.from_url(redis_url), fernet, http, **options)  # type: ignore[arg-type]
        made.append(cache)
        return cache

    yield make
    for cache in made:
        cache.close()
    http.close()


def grant(idp: FakeIdP, secret: str = token_child.CLIENT_SECRET) -> ClientCredentialsGrant:
    idp.secrets.add(secret)
    return ClientCredentialsGrant(
        name="m365",
        token_url=idp.url,
        client_id="app",
        scope="https://outlook.office365.com/.default",
        client_secret=SecretStr(secret),
    )


def wait_until(condition: Callable[[], bool], seconds: float = 3.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_memory_then_redis_then_endpoint(idp: FakeIdP, make_cache: CacheFactory) -> None:
    first, second = make_cache(), make_cache()
    fresh = first.get(grant(idp))
    assert fresh.source == "fresh"
    assert first.get(grant(idp)).source == "memory"
    from_redis = second.get(grant(idp))
    assert from_redis.source == "redis"
    assert from_redis.token == fresh.token
    assert len(idp.requests) == 1
    assert first.token_requests("m365") == 1


def test_redis_holds_only_ciphertext_with_the_token_lifetime_as_ttl(
    idp: FakeIdP, make_cache: CacheFactory, redis_client: redis.Redis, fernet: MultiFernet
) -> None:
    g = grant(idp)
    token = make_cache().get(g).token
    key = redis_keys.token("m365", g.fingerprint)
    raw = redis_client.get(key)
    assert raw is not None and token.access_token.encode() not in raw
    assert token.access_token.encode() in fernet.decrypt(raw)
    assert 3590 <= redis_client.ttl(key) <= 3599


def test_a_token_inside_the_skew_window_is_refreshed(
    idp: FakeIdP, make_cache: CacheFactory
) -> None:
    idp.then(issue(expires_in=200))
    cache = make_cache(skew_seconds=300)
    assert cache.get(grant(idp)).source == "fresh"
    assert cache.get(grant(idp)).source == "fresh"
    assert cache.get(grant(idp)).source == "memory"
    assert len(idp.requests) == 2


def test_changing_the_secret_fetches_a_new_token(idp: FakeIdP, make_cache: CacheFactory) -> None:
    cache = make_cache()
    cache.get(grant(idp, "first-secret-value"))
    assert cache.get(grant(idp, "second-secret-value")).source == "fresh"
    assert len(idp.requests) == 2


def test_sixteen_threads_on_a_cold_cache_make_one_request(
    idp: FakeIdP, make_cache: CacheFactory
) -> None:
    idp.then(slowly(0.5))
    cache = make_cache()
    g = grant(idp)
    start = threading.Barrier(16)

    def ask(_: int) -> str:
        start.wait()
        return cache.get(g).token.access_token

    with ThreadPoolExecutor(16) as pool:
        tokens = set(pool.map(ask, range(16)))
    assert len(idp.requests) == 1
    assert len(tokens) == 1


def test_four_processes_on_a_cold_cache_make_one_request(
    idp: FakeIdP, redis_url: str, secret_key: str, secrets: SecretRegistry
) -> None:
    idp.then(slowly(1.0))
    secrets.add(token_child.CLIENT_SECRET)
    context = multiprocessing.get_context("spawn")
    start, results = context.Event(), context.Queue()
    children = [
        context.Process(
            target=token_child.get_token,
            args=(redis_url, secret_key, idp.url, start, results, 40.0),
        )
        for _ in range(4)
    ]
    for child in children:
        child.start()
    start.set()
    answers = [results.get(timeout=30) for _ in children]
    for child in children:
        child.join(10)
        assert child.exitcode == 0
    assert len(idp.requests) == 1
    assert sorted(source for source, _ in answers) == ["fresh", "redis", "redis", "redis"]
    assert len({token for _, token in answers}) == 1


def test_a_killed_holder_blocks_others_only_until_its_lock_expires(
    idp: FakeIdP,
    redis_url: str,
    secret_key: str,
    make_cache: CacheFactory,
    redis_client: redis.Redis,
) -> None:
    idp.then(hang())
    context = multiprocessing.get_context("spawn")
    start, results = context.Event(), context.Queue()
    holder = context.Process(
        target=token_child.get_token, args=(redis_url, secret_key, idp.url, start, results, 2.0)
    )
    holder.start()
    start.set()
    wait_until(lambda: len(idp.requests) == 1, seconds=20)
    assert redis_client.exists(redis_keys.token_lock("m365"))
    holder.kill()
    holder.join(5)

    started = time.monotonic()
    result = make_cache(lock_seconds=2.0).get(grant(idp))
    waited = time.monotonic() - started
    assert result.source == "fresh"
    assert waited < 2.0 + 1.0
    assert len(idp.requests) == 2


def test_while_another_process_refreshes_the_still_valid_token_is_used_at_once(
    idp: FakeIdP, make_cache: CacheFactory, redis_client: redis.Redis
) -> None:
    # A holder killed mid-refresh leaves its lock for minutes (found by make chaos).
    idp.then(issue(expires_in=120))
    cache = make_cache(skew_seconds=300, wait_seconds=30.0)
    first = cache.get(grant(idp))
    redis_client.set(redis_keys.token_lock("m365"), "a dead worker", px=600_000)
    started = time.monotonic()
    again = cache.get(grant(idp))
    assert (again.source, again.token) == ("stale", first.token)
    assert time.monotonic() - started < 1.0
    assert len(idp.requests) == 1


def test_a_lock_left_by_a_dead_holder_stalls_a_client_credentials_profile_only_briefly(
    idp: FakeIdP, make_cache: CacheFactory, redis_client: redis.Redis
) -> None:
    # No valid token to fall back on, and a lock that would last two minutes.
    redis_client.set(redis_keys.token_lock("m365"), "a dead worker", px=120_000)
    cache = make_cache(wait_seconds=0.5)
    result = cache.get(grant(idp))
    assert result.source == "fresh", "client credentials rotate nothing: fetched without it"
    assert redis_client.get(redis_keys.token_lock("m365")) == b"a dead worker", "not its lock"


def test_a_failed_refresh_keeps_using_the_still_valid_token(
    idp: FakeIdP, make_cache: CacheFactory
) -> None:
    idp.then(issue(expires_in=120), reply(503, {"error": "temporarily_unavailable"}))
    cache = make_cache(skew_seconds=300)
    first = cache.get(grant(idp))
    again = cache.get(grant(idp))
    assert again.source == "stale"
    assert again.token == first.token
    # No new request on every message while the endpoint struggles.
    assert cache.get(grant(idp)).source == "stale"
    assert len(idp.requests) == 2


def test_a_failed_refresh_without_a_valid_token_raises(
    idp: FakeIdP, make_cache: CacheFactory
) -> None:
    idp.then(reply(401, {"error": "invalid_client"}))
    with pytest.raises(PermanentProviderError, match="invalid_client"):
        make_cache().get(grant(idp))


def test_invalidation_reaches_every_process(idp: FakeIdP, make_cache: CacheFactory) -> None:
    first, second = make_cache(), make_cache()
    rejected = first.get(grant(idp)).token
    assert second.get(grant(idp)).source == "redis"
    assert second.get(grant(idp)).source == "memory"

    first.invalidate("m365", rejected)
    wait_until(lambda: "m365" not in second._memory)

    renewed = second.get(grant(idp))
    assert renewed.source == "fresh"
    assert renewed.token != rejected
    assert first.get(grant(idp)).source == "redis"
    assert len(idp.requests) == 2


def test_a_late_invalidation_keeps_the_newer_token(idp: FakeIdP, make_cache: CacheFactory) -> None:
    first, second = make_cache(), make_cache()
    old = first.get(grant(idp)).token
    first.invalidate("m365", old)
    new = first.get(grant(idp)).token
    second.invalidate("m365", old)  # a 535 reported after the refresh
    assert make_cache().get(grant(idp)).token == new
    assert len(idp.requests) == 2


def test_force_fetches_even_when_cached(idp: FakeIdP, make_cache: CacheFactory) -> None:
    cache = make_cache()
    cache.get(grant(idp))
    assert cache.get(grant(idp), force=True).source == "fresh"
    assert len(idp.requests) == 2


def test_retries_are_counted_as_requests(idp: FakeIdP, make_cache: CacheFactory) -> None:
    idp.then(reply(503, {"error": "server_error"}))
    cache = make_cache(policy=RetryPolicy(max_attempts=3, backoff_base_seconds=0.01))
    cache.get(grant(idp))
    assert cache.token_requests("m365") == 2


def test_unreachable_redis_is_a_transient_cache_error(idp: FakeIdP, fernet: MultiFernet) -> None:
    with httpx.Client() as http:
        client = redis.Redis(port=free_port(), retry=Retry(NoBackoff(), 0))
        cache = TokenCache(client, fernet, http)
        with pytest.raises(TokenCacheError, match="token cache unavailable") as caught:
            cache.get(grant(idp))
    assert caught.value.kind == "transient"


def test_rotated_refresh_tokens_are_stored_encrypted_in_the_database_and_reused(
    idp: FakeIdP, make_cache: CacheFactory, store: Store, fernet: MultiFernet
) -> None:
    seed = "0.ARwA-seed-refresh-token"
    idp.add_refresh_token(seed)
    refresh_tokens = DatabaseRefreshTokenStore(store, fernet)

    def delegated() -> RefreshTokenGrant:
        return RefreshTokenGrant(
            name="delegated",
            token_url=idp.url,
            client_id="app",
            scope="x",
            seed_refresh_token=SecretStr(seed),
            store=refresh_tokens,
        )

    make_cache().get(delegated())
    make_cache().get(delegated(), force=True)
    make_cache().get(delegated(), force=True)
    sent = [r.form["refresh_token"] for r in idp.requests]
    assert sent == [seed, *idp.issued_refresh_tokens[:2]]
    with store.session() as session:
        row = session.get(RefreshToken, "delegated")
        assert row is not None
        assert idp.issued_refresh_tokens[2].encode() not in row.ciphertext
    assert refresh_tokens.load("delegated", delegated().seed_digest) == idp.issued_refresh_tokens[2]
    assert refresh_tokens.load("delegated", "another-seed") is None
