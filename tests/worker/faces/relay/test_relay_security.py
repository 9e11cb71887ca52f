"""The relay against a client that means harm: one valid login, or none.

Each test holds one finding of a review of the relay as an attacker would use
it: lockouts that one user cannot use against another, Argon2 work that
strangers cannot pile up, answers that do not tell names apart, a changed
password that ends at once, line ends that cannot hide commands from the
upstream, and a visible From that cannot claim any domain.
"""

from __future__ import annotations

import asyncio
import smtplib
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from tests.pipeline import RELAY_PASSWORD, Pipeline
from tests.worker.faces.relay.conftest import Relay
from tests.worker.faces.relay.test_relay import plain_login
from worker.faces.relay import auth
from worker.faces.relay.auth import Logins
from worker.faces.relay.users import RelayUser, hash_password


def login_code(relay: Relay, user: str, password: str) -> int:
    """The reply code to AUTH PLAIN (235 when it worked)."""
    with relay.client(user=None) as smtp:
        try:
            plain_login(smtp, user, password)
        except smtplib.SMTPAuthenticationError as exc:
            return exc.smtp_code
        return 235


def test_a_lockout_is_per_user_and_only_that_users_login_forgives_it(relay: Relay) -> None:
    # Two wrong guesses for "limited", from the address every tool here shares.
    assert [login_code(relay, "limited", "wrong") for _ in range(2)] == [535, 535]
    # Another user's good login from the same address neither is locked nor forgives.
    assert login_code(relay, "alertmanager", RELAY_PASSWORD) == 235
    assert login_code(relay, "limited", "wrong") == 535  # the third failure
    assert login_code(relay, "limited", RELAY_PASSWORD) == 454  # locked, even the right one
    assert login_code(relay, "alertmanager", RELAY_PASSWORD) == 235  # a NAT neighbour is not


def test_parallel_guesses_cannot_race_past_the_lockout(relay: Relay) -> None:
    # 15 at once: each is counted before its password is checked, so at most the
    # limit (3 in the pipeline) get a password check and a 535; the rest 454 at once.
    with ThreadPoolExecutor(15) as clients:
        codes = list(clients.map(lambda _: login_code(relay, "alertmanager", "wrong"), range(15)))
    assert codes.count(535) <= 3, codes
    assert codes.count(454) >= 12, codes


def test_the_greeting_names_the_host_only(relay: Relay) -> None:
    with smtplib.SMTP(timeout=30) as raw:
        code, banner = raw.connect("127.0.0.1", relay.port)
    assert code == 220
    host, ident = banner.decode().split(" ")  # nothing after "ESMTP"
    assert host and ident == "ESMTP", banner


# -- Logins on their own: what cannot be seen from outside without timing ----------------


@dataclass
class Users:
    """Stands in for RelayUsers: the users the relay knows right now."""

    by_name: dict[str, RelayUser] = field(default_factory=dict)

    def get(self, name: object) -> RelayUser | None:
        return self.by_name.get(name) if isinstance(name, str) else None


class HeldChecks:
    """Argon2 checks that wait until released, and note which thread ran them."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.threads: list[str] = []
        self.hashes: list[str] = []

    def password_ok(self, user: RelayUser, password: str) -> bool:
        self.threads.append(threading.current_thread().name)
        self.hashes.append(user.password_hash)
        self.release.wait(10)
        return False


def peer(address: str = "192.0.2.7") -> Any:
    return SimpleNamespace(session=SimpleNamespace(peer=(address, 40000)))


@pytest.fixture
def held(monkeypatch: pytest.MonkeyPatch) -> HeldChecks:
    checks = HeldChecks()
    monkeypatch.setattr(RelayUser, "password_ok", lambda user, text: checks.password_ok(user, text))
    monkeypatch.setattr(auth, "_MAX_DELAY_SECONDS", 0.0)
    return checks


def logins(users: Users, failures: int = 5) -> Logins:
    return Logins(users, lockout_failures=failures, lockout_seconds=300)  # type: ignore[arg-type]


def test_argon2_runs_in_its_own_small_pool_with_a_cap_on_checks_in_flight(
    held: HeldChecks,
) -> None:
    checker = logins(Users())

    async def guesses() -> list[Any]:
        # Strangers, each a name of its own, so that no lockout stops them: only the cap.
        tries = [checker._check(peer(), f"user{n}".encode(), b"x") for n in range(10)]
        started = [asyncio.ensure_future(t) for t in tries]
        await asyncio.sleep(0)  # each ran to its check (or its refusal): nothing else awaits
        in_flight = checker._in_flight
        while len(held.threads) < auth._CHECK_THREADS:  # the pool's threads took theirs
            await asyncio.sleep(0.01)
        running = len(held.threads)
        held.release.set()
        results = await asyncio.gather(*started)
        return [in_flight, running, results]

    try:
        in_flight, running, results = asyncio.run(guesses())
    finally:
        checker.close()
    assert in_flight == auth._MAX_CHECKS
    assert running == auth._CHECK_THREADS
    busy = [r for r in results if r.message == auth.BUSY]
    assert len(busy) == 10 - auth._MAX_CHECKS
    assert all(name.startswith("relay-argon2") for name in held.threads)


def test_an_unknown_user_costs_the_same_argon2_check_as_a_known_one(held: HeldChecks) -> None:
    held.release.set()
    known = RelayUser(name="tool", password_hash=hash_password("right"), profile="p")
    checker = logins(Users({"tool": known}))
    try:
        for name in (b"tool", b"nobody"):
            result = asyncio.run(checker._check(peer(), name, b"wrong"))
            assert not result.success
    finally:
        checker.close()
    assert held.hashes == [known.password_hash, auth._NOBODY.password_hash]


def test_a_changed_password_hash_ends_a_remembered_login_at_once() -> None:
    users = Users({"tool": RelayUser(name="tool", password_hash=hash_password("old"), profile="p")})
    checker = logins(users)

    def ok(password: bytes) -> bool:
        return bool(asyncio.run(checker._check(peer(), b"tool", password)).success)

    try:
        assert ok(b"old")  # now remembered
        new = RelayUser(name="tool", password_hash=hash_password("new"), profile="p")
        users.by_name["tool"] = new
        assert not ok(b"old")
        assert ok(b"new")
    finally:
        checker.close()


# -- what the upstream receives -------------------------------------------------------------


def test_bare_cr_and_lf_cannot_smuggle_commands_to_the_upstream(
    relay: Relay, pipeline: Pipeline
) -> None:
    pipeline.start_worker()
    hidden = b"MAIL FROM:<ceo@victim.example>\rRCPT TO:<cfo@victim.example>\rDATA\r"
    data = (
        b"From: <alertmanager@tools.example.test>\r\nTo: <oncall@example.test>\r\n"
        b"Subject: smuggled\r\n\r\nfirst\r.\r" + hidden + b"wire money\n.\nsecond\r\n"
    )
    with relay.client() as smtp:
        smtp.sendmail("alertmanager@tools.example.test", ["oncall@example.test"], data)
    pipeline.wait_for(lambda: pipeline.runtime.store.status_counts() == {"delivered": 1}, 60)
    (arrived,) = pipeline.server.messages  # one message, no second transaction
    assert arrived.mail_from == "alerts@example.test"
    assert arrived.rcpt_tos == ["oncall@example.test"]
    content = arrived.data
    # Every line ends in CRLF; the hidden lines are plain content lines of this message.
    assert b"\r" not in content.replace(b"\r\n", b"") and b"\n" not in content.replace(b"\r\n", b"")
    assert b"\r\n.\r\nMAIL FROM:<ceo@victim.example>\r\n" in content


def test_a_visible_from_outside_the_users_domains_becomes_the_profiles(
    relay: Relay, pipeline: Pipeline
) -> None:
    pipeline.start_worker()
    spoofed = (
        b'From: "PayPal Security" <security@paypal.com>\r\nTo: <oncall@example.test>\r\n'
        b"Subject: verify your account\r\n\r\nclick here\r\n"
    )
    allowed = (
        b"From: Backups <backup@tools.example.test>\r\nSender: <mallory@paypal.com>\r\n"
        b"To: <oncall@example.test>\r\nSubject: backup done\r\n\r\nok\r\n"
    )
    with relay.client("alertmanager") as smtp:  # no sender_domains: only the profile's own
        smtp.sendmail("alertmanager@tools.example.test", ["oncall@example.test"], spoofed)
    with relay.client("limited") as smtp:  # sender_domains = ["tools.example.test"]
        smtp.sendmail("backup@tools.example.test", ["oncall@example.test"], allowed)
    pipeline.wait_for(lambda: len(pipeline.server.messages) == 2, 60)
    by_subject = {m.message["Subject"]: m.message for m in pipeline.server.messages}
    spoof = by_subject["verify your account"]
    assert spoof["From"] == "Example Alerts <alerts@example.test>"
    assert "security@paypal.com" in spoof["Reply-To"]
    # A From within the user's domains stays; a Sender outside them makes it the profile's.
    backup = by_subject["backup done"]
    assert backup["From"] == "Example Alerts <alerts@example.test>"
    assert backup["Sender"] is None
    assert "backup@tools.example.test" in backup["Reply-To"]


def test_a_from_within_the_users_domains_is_kept_and_rewrite_from_false_keeps_any() -> None:
    limited = RelayUser(
        name="t", password_hash="x", profile="p", sender_domains=("tools.example.test",)
    )
    assert limited.may_show_as("backup@tools.example.test")
    assert not limited.may_show_as("security@paypal.com")
    anyone = RelayUser(name="t", password_hash="x", profile="p")
    assert not anyone.may_show_as("backup@tools.example.test")
    trusted = RelayUser(name="t", password_hash="x", profile="p", rewrite_from=False)
    assert trusted.may_show_as("security@paypal.com")
