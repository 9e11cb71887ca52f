"""A delegated profile's bounce reader signs in with the profile's own, rotated refresh token.

The token endpoint is the suite's (tests/fakes/idp.py): it rotates refresh tokens and
retires each one used, as Microsoft Entra ID and any server with reuse detection do, so
a reader that used the seed from the profiles file after a rotation would be refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from cryptography.fernet import MultiFernet

from providers import RetryPolicy
from tests.fakes.idp import FakeIdP
from worker import redis_keys
from worker.credentials import Credentials, load_profiles
from worker.credentials.tokens import TokenCache
from worker.errors import TokenCacheError
from worker.redis_adapter import Lock
from worker.store import DatabaseRefreshTokenStore, Store

SEED = "0.ARwA-seed-of-the-delegated-profile"
BOUNCE_SCOPE = "https://outlook.office.com/IMAP.AccessAsUser.All offline_access"


def profiles_text(idp: FakeIdP, *, seed: bool) -> str:
    return f"""
[profiles.oncall]
provider = "microsoft365"
tenant = "organizations"
from_email = "oncall@contoso.example"
auth = "oauth"
grant = "refresh_token"
client_id = "22222222-2222-2222-2222-222222222222"
token_url = "{idp.url}"
allow_insecure_token_url = true
{'refresh_token_env = "SEED"' if seed else ""}

[profiles.oncall.bounces]
"""


@pytest.fixture
def credentials_of(
    tmp_path: Path, idp: FakeIdP, redis_url: str, fernet: MultiFernet, store: Store
) -> Iterator[object]:
    caches: list[TokenCache] = []
    http = httpx.Client(timeout=5.0)

    def make(*, seed: bool = True, wait_seconds: float = 5.0) -> Credentials:
        path = tmp_path / "profiles.toml"
        path.write_text(profiles_text(idp, seed=seed))
        client = redis.Redis.from_url(redis_url)
        policy = RetryPolicy(max_attempts=1)
        cache = TokenCache(client, fernet, http, policy=policy, wait_seconds=wait_seconds)
        caches.append(cache)
        profiles = load_profiles(path, {"SEED": SEED})
        return Credentials(profiles, cache, DatabaseRefreshTokenStore(store, fernet))

    yield make
    for cache in caches:
        cache.close()
    http.close()


def refresh_requests(idp: FakeIdP) -> list[tuple[str, str]]:
    return [(r.form["refresh_token"], r.form.get("scope", "")) for r in idp.requests]


def test_the_reader_uses_the_refresh_token_the_send_path_rotated_not_the_seed(
    idp: FakeIdP, credentials_of: object
) -> None:
    idp.add_refresh_token(SEED)
    credentials = credentials_of()  # type: ignore[operator]
    credentials.get(credentials.profiles.get("oncall"))  # SMTP: the seed is used, and retired
    credentials.mailbox("oncall")  # IMAP: the rotation the SMTP refresh kept
    credentials.get(
        credentials.profiles.get("oncall"), force=True
    )  # SMTP again: the rotation the reader kept
    first, second, _ = idp.issued_refresh_tokens
    sent = refresh_requests(idp)
    assert [token for token, _ in sent] == [SEED, first, second]
    assert sent[1][1] == BOUNCE_SCOPE
    assert sent[0][1] != BOUNCE_SCOPE


def test_a_profile_signed_in_with_oauth_authorize_reads_with_the_stored_token(
    idp: FakeIdP, credentials_of: object, store: Store, fernet: MultiFernet
) -> None:
    # No seed in the file: the first refresh token came from signing in, stored by the
    # profile's name (as `mailpipe oauth authorize oncall` stores it).
    signed_in = "0.ARwA-from-signing-in"
    idp.add_refresh_token(signed_in)
    credentials = credentials_of(seed=False)  # type: ignore[operator]
    grant = credentials.grant(credentials.profiles.get("oncall"))
    DatabaseRefreshTokenStore(store, fernet).save("oncall", grant.seed_digest, signed_in)
    credentials.mailbox("oncall")
    assert refresh_requests(idp) == [(signed_in, BOUNCE_SCOPE)]
    credentials.get(credentials.profiles.get("oncall"))
    assert [token for token, _ in refresh_requests(idp)] == [
        signed_in,
        idp.issued_refresh_tokens[0],
    ]


def test_the_reader_refreshes_under_the_profiles_lock(
    idp: FakeIdP, credentials_of: object, redis_url: str
) -> None:
    # Two refreshes of one refresh token at once would replay it: while the profile's
    # lock is held (by a worker refreshing its SMTP token), the reader waits, then gives up.
    idp.add_refresh_token(SEED)
    credentials = credentials_of(wait_seconds=0.3)  # type: ignore[operator]
    client = redis.Redis.from_url(redis_url)
    lock = Lock(client, redis_keys.token_lock("oncall"), 30, TokenCacheError)
    assert lock.acquire()
    try:
        with pytest.raises(TokenCacheError, match="waiting for another process's refresh"):
            credentials.mailbox("oncall")
    finally:
        lock.release()
        client.close()
    assert idp.requests == []
    credentials.mailbox("oncall")
    assert refresh_requests(idp) == [(SEED, BOUNCE_SCOPE)]
