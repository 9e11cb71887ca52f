"""What SMTP and Graph share around a send: the wait for a slot, one fresh token after a
refusal."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest
from pydantic import SecretStr

from providers import PasswordCredentials, Token
from tests.worker.transport.test_slots import profile
from worker.credentials import OAuthCredentials, Profile, SmtpCredentials
from worker.credentials.tokens import CachedToken
from worker.transport import ConnectionsBusy, attempts
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
    # Busy before connecting: nothing was tried, so the job may go elsewhere at once.
    assert (busy.value.outcome.phase, busy.value.kind) == ("connect", "transient")
    assert naps and all(0.02 <= nap <= 0.1 for nap in naps)


def test_with_no_time_to_wait_a_full_cap_is_busy_without_a_nap(
    slots: ConnectionSlots, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``wait_seconds=0`` is one try: even on a clock that has not moved since, no nap."""
    assert slots.try_acquire("p", 1) is not None
    monkeypatch.setattr(attempts, "time", SimpleNamespace(monotonic=lambda: 1000.0))

    def no_nap(seconds: float) -> None:
        raise AssertionError(f"napped {seconds} s with no time to wait")

    with pytest.raises(ConnectionsBusy):
        wait_for_slot(slots, profile(), wait_seconds=0, busy="all in use", sleep=no_nap)


@dataclass
class FakeCredentials:
    """Hands out numbered tokens (or a password); records what was forced and dropped."""

    password: bool = False
    takes_seconds: float = 0.0
    forced: list[bool] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    asked_for: list[str] = field(default_factory=list)

    def get(self, profile: Profile, *, force: bool = False) -> SmtpCredentials:
        self.forced.append(force)
        self.asked_for.append(profile.name)
        time.sleep(self.takes_seconds)
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


def test_a_refused_token_is_logged_with_the_profile_and_the_reason(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="worker.transport.attempts"):
        with_fresh_token(FakeCredentials(), profile(), used, lambda r: "535 token expired")  # type: ignore[arg-type]
    assert [r.getMessage() for r in caplog.records] == [
        "profile p: 535 token expired; retrying with a fresh token"
    ]


def test_the_fresh_token_is_for_the_same_profile_and_its_result_is_the_one_kept() -> None:
    fake = FakeCredentials()
    only_the_first = lambda r: "401 InvalidAuthenticationToken" if r == "token-1" else None  # noqa: E731
    result, given, _ = with_fresh_token(fake, profile(), used, only_the_first)  # type: ignore[arg-type]
    assert (result, used(given)) == ("token-2", "token-2")
    assert fake.asked_for == ["p", "p"]


def test_the_time_reported_is_how_long_getting_the_credentials_took() -> None:
    fake = FakeCredentials(takes_seconds=0.05)
    _, _, seconds = with_fresh_token(fake, profile(), used, lambda r: None)  # type: ignore[arg-type]
    assert 0.05 <= seconds < 1
    _, _, seconds = with_fresh_token(fake, profile(), used, lambda r: "535 token expired")  # type: ignore[arg-type]
    assert 0.05 <= seconds < 1, "the fresh token's time, not both added up"
