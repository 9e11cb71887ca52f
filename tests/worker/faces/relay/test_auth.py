"""Relay logins without a socket: AUTH PLAIN and LOGIN, the delay, the lockout, the memory.

The SMTP session is a stand-in with the three things Logins uses; the clock and
the sleep are injected, so nothing here waits.
"""

from __future__ import annotations

import asyncio
import logging
from base64 import b64encode
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from aiosmtpd.smtp import MISSING, AuthResult
from argon2 import PasswordHasher

from tests.fakes.clock import Clock
from worker.faces.relay import auth
from worker.faces.relay.auth import BUSY, LOCKED_OUT, Logins
from worker.faces.relay.users import RelayUser

# Verifying reads the cost from the hash: a cheap one keeps these tests fast.
CHEAP = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
TOOL = RelayUser(name="tool", password_hash=CHEAP.hash("right"), profile="p")


def b64(text: str) -> str:
    return b64encode(text.encode()).decode()


class Session:
    """Stands in for aiosmtpd's SMTP: the peer, pushed lines and AUTH challenges."""

    def __init__(self, *answers: Any, peer: str | None = "192.0.2.7") -> None:
        self.session = SimpleNamespace(peer=(peer, 40000)) if peer else None
        self.answers = list(answers)
        self.pushed: list[str] = []
        self.challenges: list[bytes] = []

    async def push(self, line: str) -> None:
        self.pushed.append(line)

    async def challenge_auth(self, challenge: bytes) -> Any:
        self.challenges.append(challenge)
        return self.answers.pop(0)


class Relay:
    """Logins with a fake clock and a sleep that only notes its delay."""

    def __init__(self, *, failures: int = 3, users: dict[str, RelayUser] | None = None) -> None:
        self.clock = Clock(1000.0)
        self.delays: list[float] = []
        self.users = {"tool": TOOL} if users is None else users
        self.logins = Logins(
            self,  # type: ignore[arg-type]
            lockout_failures=failures,
            lockout_seconds=300,
            clock=self.clock,
            sleep=self._sleep,
        )

    def get(self, name: object) -> RelayUser | None:
        return self.users.get(name) if isinstance(name, str) else None

    async def _sleep(self, seconds: float) -> None:
        self.delays.append(seconds)

    def plain(self, user: str, password: str, peer: str | None = "192.0.2.7") -> Any:
        args = ["PLAIN", b64(f"\0{user}\0{password}")]
        return asyncio.run(self.logins.plain(Session(peer=peer), args))  # type: ignore[arg-type]

    def code(self, user: str, password: str, peer: str = "192.0.2.7") -> int:
        result = self.plain(user, password, peer)
        if result.success:
            return 235
        return int(result.message[:3]) if result.message else 535


@pytest.fixture
def relay() -> Iterator[Relay]:
    made = Relay()
    yield made
    made.logins.close()


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The password hashes each Argon2 check was run against."""
    seen: list[str] = []
    original = RelayUser.password_ok

    def password_ok(user: RelayUser, password: str) -> bool:
        seen.append(user.password_hash)
        return original(user, password)

    monkeypatch.setattr(RelayUser, "password_ok", password_ok)
    return seen


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


# -- AUTH PLAIN and LOGIN ---------------------------------------------------------------


def test_plain_on_the_auth_line(relay: Relay) -> None:
    result = relay.plain("tool", "right")
    assert (result.success, result.auth_data) == (True, "tool")
    assert relay.delays == []


def test_plain_after_a_challenge(relay: Relay) -> None:
    session = Session(b"\0tool\0right")
    result = run(relay.logins.plain(session, ["PLAIN"]))  # type: ignore[arg-type]
    assert result.success
    assert session.challenges == [b""]


def test_plain_that_does_not_split_in_three_is_a_syntax_error(relay: Relay) -> None:
    session = Session()
    result = run(relay.logins.plain(session, ["PLAIN", b64("tool\0right")]))  # type: ignore[arg-type]
    assert (result.success, result.handled) == (False, True)
    assert session.pushed == ["501 5.5.2 Cannot split the PLAIN response"]
    session = Session()
    result = run(relay.logins.plain(session, ["PLAIN", b64("a\0tool\0right\0x")]))  # type: ignore[arg-type]
    assert session.pushed == ["501 5.5.2 Cannot split the PLAIN response"]
    assert relay.code("tool", "right") == 235, "no failure was counted"


# The last: PLAIN's "\0tool\0right" with a character base64 does not have.
@pytest.mark.parametrize("initial", ["not base64!", "dG9vbA", "AHRvb2wAcmlnaHQ=!"])
def test_an_answer_that_is_not_base64_is_a_syntax_error(relay: Relay, initial: str) -> None:
    session = Session()
    result = run(relay.logins.plain(session, ["PLAIN", initial]))  # type: ignore[arg-type]
    assert (result.success, result.handled) == (False, True)
    assert session.pushed == ["501 5.5.2 Cannot decode base64"]


def test_a_cancelled_challenge_ends_the_login(relay: Relay) -> None:
    session = Session(MISSING)
    result = run(relay.logins.plain(session, ["PLAIN"]))  # type: ignore[arg-type]
    assert (result.success, result.handled) == (False, True)
    assert session.pushed == []


def test_login_asks_for_what_the_auth_line_did_not_give(relay: Relay) -> None:
    asked = Session(b"tool", b"right")
    assert run(relay.logins.login(asked, ["LOGIN"])).success  # type: ignore[arg-type]
    assert asked.challenges == [b"Username:", b"Password:"]
    given = Session(b"right")
    result = run(relay.logins.login(given, ["LOGIN", b64("tool")]))  # type: ignore[arg-type]
    assert (result.success, result.auth_data) == (True, "tool")
    assert given.challenges == [b"Password:"]


def test_login_cancelled_at_either_question(relay: Relay) -> None:
    at_user = Session(MISSING)
    result = run(relay.logins.login(at_user, ["LOGIN"]))  # type: ignore[arg-type]
    assert (result.success, result.handled, at_user.challenges) == (False, True, [b"Username:"])
    at_password = Session(MISSING)
    result = run(relay.logins.login(at_password, ["LOGIN", b64("tool")]))  # type: ignore[arg-type]
    assert (result.success, result.handled) == (False, True)


# -- failures: the delay and the lockout ------------------------------------------------


def test_a_wrong_password_is_answered_after_a_doubling_delay(
    caplog: pytest.LogCaptureFixture,
) -> None:
    relay = Relay(failures=10)
    with caplog.at_level(logging.WARNING, logger="mailpipe.relay"):
        results = [relay.plain("tool", "wrong") for _ in range(7)]
    relay.logins.close()
    assert all((r.success, r.handled, r.message) == (False, False, None) for r in results)
    assert relay.delays == [0.25, 0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert caplog.records[0].getMessage() == "relay: failed login for 'tool' from 192.0.2.7 (1)"
    assert caplog.records[0].levelno == logging.WARNING


def test_a_name_or_password_that_is_not_utf8_is_a_failed_login(
    relay: Relay, caplog: pytest.LogCaptureFixture
) -> None:
    for user, password in ((b"\xfftool", b"right"), (b"tool", b"\xffright")):
        session = Session(user, password)
        with caplog.at_level(logging.WARNING, logger="mailpipe.relay"):
            result = run(relay.logins.login(session, ["LOGIN"]))  # type: ignore[arg-type]
        assert (result.success, result.handled) == (False, False)
    assert caplog.records[0].getMessage() == (
        "relay: failed login for '\ufffdtool' from 192.0.2.7 (1)"
    )


def test_a_client_without_a_known_address_is_counted_as_unknown(
    relay: Relay, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="mailpipe.relay"):
        relay.plain("tool", "wrong", peer=None)
    assert caplog.records[0].getMessage() == "relay: failed login for 'tool' from ? (1)"


def test_after_the_limit_the_pair_is_locked_even_with_the_right_password(
    relay: Relay, checks: list[str]
) -> None:
    assert [relay.code("tool", "wrong") for _ in range(3)] == [535, 535, 535]
    assert len(checks) == 3
    assert relay.plain("tool", "right") == AuthResult(
        success=False, handled=False, message=LOCKED_OUT
    ), "not handled: aiosmtpd sends the 454 itself"
    assert len(checks) == 3, "a locked pair costs no Argon2 check"
    assert relay.code("tool", "right", peer="192.0.2.8") == 235, "another address is not locked"


def test_only_a_quiet_lockout_seconds_forgives(relay: Relay) -> None:
    for _ in range(3):
        relay.plain("tool", "wrong")
    relay.clock.now += 300
    assert relay.code("tool", "right") == 454, "300 s after the last failure: still locked"
    relay.clock.now += 0.5
    assert relay.code("tool", "right") == 235


def test_a_good_login_forgives_the_failures_before_it(relay: Relay) -> None:
    assert [relay.code("tool", "wrong") for _ in range(2)] == [535, 535]
    assert relay.code("tool", "right") == 235
    assert [relay.code("tool", "wrong") for _ in range(3)] == [535, 535, 535]
    assert relay.code("tool", "right") == 454
    assert relay.delays == [0.25, 0.5, 0.25, 0.5, 1.0], "the delay starts over too"


def test_old_failures_are_forgotten_when_there_are_many_and_live_ones_kept(relay: Relay) -> None:
    for _ in range(3):
        relay.plain("tool", "wrong")  # locked, at the clock's now
    relay.clock.now += 200
    for n in range(10_001):  # quiet for longer than lockout_seconds: forgettable
        relay.logins._failures[(f"198.51.100.{n}", "x")] = auth._Failures(1, relay.clock.now - 301)
    relay.logins._failures[("192.0.2.9", "x")] = auth._Failures(1, relay.clock.now - 300)
    assert relay.code("tool", "right", peer="192.0.2.10") == 235  # a new pair: the clean-up
    assert set(relay.logins._failures) == {("192.0.2.7", "tool"), ("192.0.2.9", "x")}
    assert relay.code("tool", "right") == 454, "the lockout survived the clean-up"


def test_at_most_a_few_checks_run_at_once() -> None:
    relay = Relay(users={})
    relay.logins._in_flight = auth._MAX_CHECKS
    result = run(relay.logins._check(Session(), b"tool", b"right"))  # type: ignore[arg-type]
    assert result == AuthResult(success=False, handled=False, message=BUSY)
    relay.logins._in_flight = auth._MAX_CHECKS - 1
    assert relay.code("nobody", "right") == 535, "under the cap: checked (and unknown)"
    assert relay.logins._in_flight == auth._MAX_CHECKS - 1
    relay.logins.close()


# -- a password checked once is remembered for a while -----------------------------------


def test_parallel_good_logins_of_one_pair_all_succeed(relay: Relay) -> None:
    async def both() -> list[Any]:
        tries = [relay.logins._check(Session(), b"tool", b"right") for _ in range(2)]  # type: ignore[arg-type]
        return list(await asyncio.gather(*tries))

    assert [r.success for r in run(both())] == [True, True]


def test_a_wrong_password_fails_at_the_clocks_very_start(relay: Relay) -> None:
    relay.clock.now = 0.0  # time.monotonic may be near 0 just after boot
    assert relay.code("tool", "wrong") == 535
    assert relay.code("tool", "right") == 235


def test_a_good_password_is_remembered_for_five_minutes(relay: Relay, checks: list[str]) -> None:
    assert relay.code("tool", "right") == 235
    relay.clock.now += 299
    assert relay.code("tool", "right") == 235
    assert len(checks) == 1, "remembered: no second Argon2 check"
    relay.clock.now += 1
    assert relay.code("tool", "right") == 235
    assert len(checks) == 2, "five minutes later it is checked again"


def test_a_wrong_password_is_never_remembered(relay: Relay, checks: list[str]) -> None:
    relay.code("tool", "wrong")
    relay.code("tool", "wrong")
    assert len(checks) == 2
    assert relay.logins._verified == {}


def test_the_memory_forgets_expired_entries_when_it_is_full(relay: Relay) -> None:
    now = relay.clock.now
    relay.logins._verified = {n.to_bytes(4, "big"): now - 1 for n in range(10_001)}
    relay.logins._verified[b"live"] = now + 1
    relay.logins._verified[b"expires-now"] = now
    assert relay.code("tool", "right") == 235
    assert set(relay.logins._verified) - {b"live"} != set()
    assert len(relay.logins._verified) == 2, "the expired went, the live and the new stay"
    assert relay.logins._verified[b"live"] == now + 1
    (new,) = set(relay.logins._verified) - {b"live"}
    assert relay.logins._verified[new] == now + 300
