"""The secret key against what is stored: a wrong key stops at once; rotation re-encrypts."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import redis
from cryptography.fernet import Fernet, MultiFernet
from pydantic import SecretStr

from providers import CredentialsConfigError, RetryPolicy
from tests.fakes.idp import FakeIdP
from tests.pipeline import Pipeline
from tests.worker.credentials.test_token_cache import grant
from worker import runtime
from worker.credentials import TokenCache
from worker.errors import ConfigError
from worker.store import DatabaseRefreshTokenStore, Store, check_key, rotate_stored


def new_key() -> MultiFernet:
    return MultiFernet([Fernet(Fernet.generate_key())])


def test_a_valid_key_that_is_not_the_stored_one_is_refused_with_one_line(store: Store) -> None:
    first, other = new_key(), new_key()
    check_key(store, first)  # the first key written wins
    check_key(store, first)
    with pytest.raises(ConfigError, match="cannot decrypt what this database holds") as caught:
        check_key(store, other)
    assert "\n" not in str(caught.value)


def test_a_worker_refused_for_its_key_leaves_no_database_connection_open(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[Store] = []

    class Recorded(Store):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(runtime, "Store", Recorded)
    other = Fernet.generate_key().decode()
    settings = pipeline.runtime.settings.model_copy(update={"secret_key": SecretStr(other)})
    with pytest.raises(ConfigError, match="cannot decrypt"):
        runtime.build_runtime(settings)
    (store,) = made
    assert store.engine.pool.checkedin() == 0, "the checks' pooled connection was closed"


def test_a_rotated_refresh_token_is_never_replaced_by_the_seed(store: Store) -> None:
    old, new = new_key(), new_key()
    DatabaseRefreshTokenStore(store, old).save("m365", "seed-digest", "rotated-refresh-token")

    with pytest.raises(CredentialsConfigError, match="cannot be decrypted"):
        DatabaseRefreshTokenStore(store, new).load("m365", "seed-digest")


def test_rotation_re_encrypts_stored_and_cached_tokens_so_the_old_key_can_go(
    store: Store, redis_url: str, idp: FakeIdP
) -> None:
    old_key, new_key = Fernet(Fernet.generate_key()), Fernet(Fernet.generate_key())
    old, both, new = MultiFernet([old_key]), MultiFernet([new_key, old_key]), MultiFernet([new_key])
    check_key(store, old)
    DatabaseRefreshTokenStore(store, old).save("m365", "seed-digest", "rotated-refresh-token")
    client = redis.Redis.from_url(redis_url)
    with httpx.Client(timeout=5) as http:
        cached = TokenCache(client, old, http, policy=RetryPolicy(max_attempts=1))
        first = cached.get(grant(idp))
        cached.close()

        assert rotate_stored(store, both) == 1
        rotating = TokenCache(client, both, http)
        assert rotating.rotate_key() == (1, 0)
        rotating.close()

        check_key(store, new)  # the old key is gone from the settings
        assert DatabaseRefreshTokenStore(store, new).load("m365", "seed-digest") == (
            "rotated-refresh-token"
        )
        after = TokenCache(client, new, http, local_copy=False)
        again = after.get(grant(idp))
        after.close()
    assert (again.source, again.token.access_token) == ("redis", first.token.access_token)
    assert len(idp.requests) == 1, "the cached token survived the rotation"
    client.close()
