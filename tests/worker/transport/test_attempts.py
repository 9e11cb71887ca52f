"""What SMTP and Graph share around a send: the wait for a slot, one fresh token after a
refusal."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import pytest
from pydantic import SecretStr

from providers import PasswordCredentials, Token
from tests.worker.transport.test_slots import profile
from worker.credentials import OAuthCredentials, Profile, SmtpCredentials
from worker.credentials.tokens import CachedToken
from worker.transport import ConnectionsBusy
from worker.transport.attempts import wait_for_slot, with_fresh_token
from worker.transport.slots import ConnectionSlots


def test_a_free_slot_is_leased_at_once(slots: ConnectionSlots) -> None:
    reused, lease = wait_for_slot(slots, profile(), wait_seconds=0, busy="busy")
    assert reused is None and lease is not None


def test_an_idle_connection_comes_before_a_new_slot(slots: ConnectionSlots) -> None:
    reused, lease = wait_for_slot(slots, profile(), wait_seconds=0, busy="busy", idle=lambda: "c")
    assert (reused, lease) == ("c", None)


def test_no_cap_needs_no_lease() -> None:
    assert wait_for_slot(None, profile(), wait_seconds=0, busy="busy") == (None, None)


def test_at_the_cap_it_waits_then_says_busy(slots: ConnectionSlots) -> None:
    taken = slots.try_acquire("p", 1)
    assert taken is not None
    naps: list[float] = []
    with pytest.raises(ConnectionsBusy) as busy:
        wait_for_slot(slots, profile(), wait_seconds=0.2, busy="all in use", sleep=naps.append)
    assert busy.value.outcome.text == "all in use"
    assert naps and all(0.02 <= nap <= 0.1 for nap in naps)


@dataclass
class FakeCredentials:
    """Hands out numbered tokens (or a password); records what was forced and dropped."""

    password: bool = False
    forced: list[bool] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)

    def get(self, profile: Profile, *, force: bool = False) -> SmtpCredentials:
        self.forced.append(force)
        if self.password:
            return PasswordCredentials(username="a", password=SecretStr("pw"))
        token = Token(access_token=f"token-{len(self.forced)}", expires_at=time.time() + 3600)
        return OAuthCredentials("a", CachedToken(token, "fresh" if force else "memory"), None)

    def invalidate(self, name: str, rejected: OAuthCredentials) -> None:
        self.dropped.append(f"{name}:{rejected.access_token}")


def used(credentials: SmtpCredentials) -> str:
    return credentials.access_token if isinstance(credentials, OAuthCredentials) else "password"


def test_a_result_not_refused_is_kept() -> None:
    fake = FakeCredentials()
    result, given, _ = with_fresh_token(fake, profile(), used, lambda r: None)  # type: ignore[arg-type]
    assert (result, fake.forced, fake.dropped) == ("token-1", [False], [])
    assert used(given) == "token-1"


def test_a_refused_password_is_not_tried_again() -> None:
    fake = FakeCredentials(password=True)
    result, _, _ = with_fresh_token(fake, profile(), used, lambda r: "535 no")  # type: ignore[arg-type]
    assert (result, fake.forced, fake.dropped) == ("password", [False], [])


def test_a_refused_token_is_dropped_and_one_fresh_token_tried_once() -> None:
    fake = FakeCredentials()
    refused = lambda r: "535 token expired"  # noqa: E731 (refused both times)
    result, given, _ = with_fresh_token(fake, profile(), used, refused)  # type: ignore[arg-type]
    assert result == "token-2" and used(given) == "token-2"
    assert fake.forced == [False, True]
    assert fake.dropped == ["p:token-1"]
