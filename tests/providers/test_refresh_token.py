"""Refresh tokens: each rotation is persisted before use and never replayed."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from pydantic import SecretStr

from providers import PermanentProviderError, RefreshTokenGrant, TokenEndpoint
from tests.fakes.idp import FakeIdP, issue, reply
from tests.fakes.idp_bodies import MS_REFRESH_TOKEN_INACTIVE
from tests.leaks import SecretRegistry

SEED = "0.ARwA-seed-refresh-token-from-consent"
SCOPE = "https://outlook.office.com/SMTP.Send offline_access"


class MemoryStore:
    def __init__(self) -> None:
        self.saved: dict[str, tuple[str, str]] = {}
        self.fail = False

    def load(self, profile: str, seed_digest: str) -> str | None:
        entry = self.saved.get(profile)
        return entry[1] if entry and entry[0] == seed_digest else None

    def save(self, profile: str, seed_digest: str, refresh_token: str) -> None:
        if self.fail:
            raise OSError("disk full")
        self.saved[profile] = (seed_digest, refresh_token)


@pytest.fixture
def endpoint() -> Iterator[TokenEndpoint]:
    with httpx.Client(timeout=2.0) as http:
        yield TokenEndpoint(http)


def make_grant(
    url: str, store: MemoryStore, seed: str = SEED, **extra: object
) -> RefreshTokenGrant:
    return RefreshTokenGrant(
        name="m365-delegated",
        token_url=url,
        client_id="app-id",
        scope=SCOPE,
        seed_refresh_token=SecretStr(seed),
        store=store,
        **extra,  # type: ignore[arg-type]
    )


def test_form_fields(idp: FakeIdP, endpoint: TokenEndpoint, secrets: SecretRegistry) -> None:
    idp.add_refresh_token(SEED)
    grant = make_grant(
        idp.url,
        MemoryStore(),
        client_secret=SecretStr("app-secret-123456"),
        redirect_uri="https://localhost/callback",
    )
    grant.fetch(endpoint)
    assert idp.requests[0].form == {
        "grant_type": "refresh_token",
        "client_id": "app-id",
        "refresh_token": SEED,
        "scope": SCOPE,
        "redirect_uri": "https://localhost/callback",
        "client_secret": "app-secret-123456",
    }


def test_three_refreshes_each_send_the_previous_rotation(
    idp: FakeIdP, endpoint: TokenEndpoint
) -> None:
    idp.add_refresh_token(SEED)
    store = MemoryStore()
    grant = make_grant(idp.url, store)
    for _ in range(3):
        grant.fetch(endpoint)
    sent = [r.form["refresh_token"] for r in idp.requests]
    assert sent == [SEED, *idp.issued_refresh_tokens[:2]]
    assert store.load(grant.name, grant.seed_digest) == idp.issued_refresh_tokens[2]
    assert len(set(sent)) == 3, "a retired refresh token was sent twice"


def test_a_fresh_grant_object_continues_from_the_stored_token(
    idp: FakeIdP, endpoint: TokenEndpoint
) -> None:
    idp.add_refresh_token(SEED)
    store = MemoryStore()
    make_grant(idp.url, store).fetch(endpoint)
    make_grant(idp.url, store).fetch(endpoint)  # e.g. after a worker restart
    assert idp.requests[1].form["refresh_token"] == idp.issued_refresh_tokens[0]


def test_a_new_seed_in_the_profile_replaces_the_stored_chain(
    idp: FakeIdP, endpoint: TokenEndpoint
) -> None:
    idp.add_refresh_token(SEED)
    store = MemoryStore()
    make_grant(idp.url, store).fetch(endpoint)
    idp.add_refresh_token("0.ARwA-second-consent-seed")
    make_grant(idp.url, store, seed="0.ARwA-second-consent-seed").fetch(endpoint)
    assert idp.requests[1].form["refresh_token"] == "0.ARwA-second-consent-seed"


def test_unrotated_response_keeps_the_current_token(idp: FakeIdP, endpoint: TokenEndpoint) -> None:
    idp.add_refresh_token(SEED)
    idp.then(issue(rotate=False))
    store = MemoryStore()
    make_grant(idp.url, store).fetch(endpoint)
    assert store.saved == {}
    make_grant(idp.url, store).fetch(endpoint)
    assert idp.requests[1].form["refresh_token"] == SEED


def test_token_is_not_returned_when_the_rotation_cannot_be_stored(
    idp: FakeIdP, endpoint: TokenEndpoint
) -> None:
    idp.add_refresh_token(SEED)
    store = MemoryStore()
    store.fail = True
    with pytest.raises(OSError, match="disk full"):
        make_grant(idp.url, store).fetch(endpoint)


def test_expired_refresh_token_asks_for_consent(
    idp: FakeIdP, endpoint: TokenEndpoint, secrets: SecretRegistry
) -> None:
    idp.add_refresh_token(SEED)
    idp.then(reply(*MS_REFRESH_TOKEN_INACTIVE))
    with pytest.raises(PermanentProviderError) as caught:
        make_grant(idp.url, MemoryStore()).fetch(endpoint)
    sign_in = "the user must sign in again: mailpipe oauth authorize m365-delegated"
    assert sign_in in str(caught.value)
    assert caught.value.details.error_codes == (700082,)
    assert len(idp.requests) == 1
    secrets.assert_absent(str(caught.value), repr(caught.value))
