"""Relay users from the profiles file, and what each may send (pure, but for a temp file)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from worker.credentials import read_profiles_document
from worker.errors import ConfigError
from worker.faces.relay.users import RelayUser, hash_password, load_relay_users, relay_users_of

HASH = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash("right")


def load(tmp_path: Path, text: str, profiles: tuple[str, ...] = ("p", "q")) -> dict[str, RelayUser]:
    return load_relay_users(
        tomllib.loads(text), path=tmp_path / "profiles.toml", profile_names=profiles
    )


def problems(tmp_path: Path, text: str, profiles: tuple[str, ...] = ("p", "q")) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text, profiles)
    prefix = f"{tmp_path / 'profiles.toml'}: "
    lines = str(caught.value).split("\n")
    assert all(line.startswith(prefix) for line in lines), lines
    return [line.removeprefix(prefix) for line in lines]


def test_a_user_with_every_field(tmp_path: Path) -> None:
    users = load(
        tmp_path,
        f"""
[relay.users."backup.tool@x+1"]
password_hash = "{HASH}"
profile = "q"
sender_domains = ["Tools.Example.TEST", "*.example.test"]
recipient_domains = ["Example.test"]
priority = "high"
rewrite_from = false
""",
    )
    assert users == {
        "backup.tool@x+1": RelayUser(
            name="backup.tool@x+1", password_hash=HASH, profile="q",
            sender_domains=("tools.example.test", "*.example.test"),
            recipient_domains=("example.test",), priority="high", rewrite_from=False,
        )
    }  # fmt: skip


def test_a_user_with_the_least(tmp_path: Path) -> None:
    users = load(tmp_path, f'[relay.users.tool]\npassword_hash = "{HASH}"\nprofile = "p"\n')
    assert users == {"tool": RelayUser(name="tool", password_hash=HASH, profile="p")}
    assert (users["tool"].priority, users["tool"].rewrite_from) == ("normal", True)
    assert users["tool"].sender_domains == users["tool"].recipient_domains == ()


def test_a_file_without_relay_users_has_none(tmp_path: Path) -> None:
    assert load(tmp_path, "[profiles.p]\nhost = 'h'\n") == {}
    assert load(tmp_path, "[relay]\nport = 2525\n") == {}


@pytest.mark.parametrize("text", ["relay = 1\n", "[relay]\nusers = 1\n", "relay.users = [1]\n"])
def test_relay_users_must_be_tables(tmp_path: Path, text: str) -> None:
    assert problems(tmp_path, text) == ["[relay.users.NAME] must be tables"]


PROFILE_P = """
[profiles.p]
host = "smtp.example.test"
from_email = "p@example.test"
auth = "password"
username = "p"
password = "relay-users-password"
"""


def test_relay_users_come_from_the_one_read_of_the_profiles_file(tmp_path: Path) -> None:
    path = tmp_path / "profiles.toml"
    path.write_text(PROFILE_P + f"[relay.users.app]\npassword_hash = '{HASH}'\nprofile = 'p'\n")
    users = relay_users_of(read_profiles_document(path, {}))
    assert list(users) == ["app"] and users["app"].profile == "p"


def test_a_problem_in_the_one_read_names_the_file_and_the_profiles_it_knows(
    tmp_path: Path,
) -> None:
    path = tmp_path / "profiles.toml"
    path.write_text(PROFILE_P + f"[relay.users.app]\npassword_hash = '{HASH}'\nprofile = 'q'\n")
    with pytest.raises(ConfigError) as raised:
        relay_users_of(read_profiles_document(path, {}))
    assert str(raised.value).startswith(f"{path}: relay user 'app', "), raised.value


def test_an_unreadable_file_is_named_with_the_reason(tmp_path: Path) -> None:
    path = tmp_path / "profiles.toml"
    with pytest.raises(ConfigError) as caught:
        read_profiles_document(tmp_path / "missing.toml", {})
    assert str(caught.value) == (
        f"{tmp_path / 'missing.toml'}: profiles file not found (set MAILPIPE_PROFILES_FILE)"
    )
    path.write_text(PROFILE_P + "[relay\n")
    with pytest.raises(ConfigError) as caught:
        read_profiles_document(path, {})
    assert str(caught.value).startswith(f"{path}: not valid TOML: ")
    path.write_bytes(b"# \xff\n")
    with pytest.raises(ConfigError) as caught:
        read_profiles_document(path, {})
    assert str(caught.value).startswith(f"{path}: not UTF-8 text (byte 2 is 0xff)")


def test_every_problem_of_every_user_is_listed(tmp_path: Path) -> None:
    text = f"""
[relay.users]
flat = 1

[relay.users.good]
password_hash = "{HASH}"
profile = "p"

[relay.users.bad]
password_hash = "plain-text"
profile = "nope"
sender_domains = ["example.test", "not a domain"]
recipient_domains = "example.test"
priority = "urgent"
rewrite_from = "no"
colour = "red"

[relay.users."-dash"]
profile = "p"
"""
    assert problems(tmp_path, text) == [
        "relay user 'flat', must be a table",
        "relay user 'bad', field 'colour': unknown field",
        "relay user 'bad', field 'password_hash': missing or not an Argon2 hash "
        "(make one with `mailpipe relay hash-password`)",
        "relay user 'bad', field 'profile': unknown profile 'nope' (profiles: p, q)",
        "relay user 'bad', field 'sender_domains': a list of domains, like [\"example.com\"]",
        "relay user 'bad', field 'recipient_domains': a list of domains, like [\"example.com\"]",
        "relay user 'bad', field 'priority': 'normal' or 'high'",
        "relay user 'bad', field 'rewrite_from': true or false",
        "relay user '-dash', names may use letters, digits, '.', '_', '@', '+' and '-' "
        "(64 at most)",
    ]


def test_a_missing_hash_and_profile_are_problems_and_no_profiles_says_none(tmp_path: Path) -> None:
    assert problems(tmp_path, "[relay.users.tool]\n", profiles=()) == [
        "relay user 'tool', field 'password_hash': missing or not an Argon2 hash "
        "(make one with `mailpipe relay hash-password`)",
        "relay user 'tool', field 'profile': unknown profile None (profiles: none)",
    ]


@pytest.mark.parametrize(
    ("name", "ok"),
    [("a", True), ("a" * 64, True), ("a" * 65, False), ("_a", False), ("a b", False),
     ("0a._@+-", True), ("a/b", False)],
)  # fmt: skip
def test_user_names(tmp_path: Path, name: str, ok: bool) -> None:
    text = f'[relay.users."{name}"]\npassword_hash = "{HASH}"\nprofile = "p"\n'
    if ok:
        assert list(load(tmp_path, text)) == [name]
    else:
        assert problems(tmp_path, text)[0].endswith("(64 at most)")


@pytest.mark.parametrize(
    ("domain", "ok"),
    [("example.test", True), ("*.example.test", True), ("a-b.example.test", True),
     ("example", False), ("*example.test", False), ("*.*.example.test", False),
     ("example.test.", False), ("exa mple.test", False), ("", False)],
)  # fmt: skip
def test_domains(tmp_path: Path, domain: str, ok: bool) -> None:
    text = (
        f'[relay.users.tool]\npassword_hash = "{HASH}"\nprofile = "p"\n'
        f'sender_domains = ["{domain}"]\n'
    )
    if ok:
        assert load(tmp_path, text)["tool"].sender_domains == (domain,)
    else:
        assert problems(tmp_path, text) == [
            "relay user 'tool', field 'sender_domains': a list of domains, like [\"example.com\"]"
        ]


def test_a_password_is_checked_against_its_argon2_hash() -> None:
    user = RelayUser(name="tool", password_hash=hash_password("right"), profile="p")
    assert user.password_hash.startswith("$argon2id$")
    assert user.password_ok("right")
    assert not user.password_ok("wrong")
    assert not RelayUser(name="t", password_hash="not-a-hash", profile="p").password_ok("x")


def test_domains_allow_exact_names_and_subdomains_of_a_wildcard() -> None:
    user = RelayUser(
        name="t", password_hash=HASH, profile="p",
        sender_domains=("tools.example.test", "*.corp.test"),
        recipient_domains=("example.test",),
    )  # fmt: skip
    assert user.may_send_as("a@TOOLS.example.test")
    assert user.may_send_as("a@x.corp.test")
    assert user.may_send_as("a@b.x.corp.test")
    assert not user.may_send_as("a@corp.test"), "a wildcard is for subdomains only"
    assert not user.may_send_as("a@evilcorp.test")
    assert not user.may_send_as("a@sub.tools.example.test")
    assert not user.may_send_as("tools.example.test@evil.test")
    assert user.may_send_as('"a@evil.test"@tools.example.test'), "the domain follows the last @"
    assert user.may_send_to("b@example.test")
    assert not user.may_send_to("b@tools.example.test")
    anyone = RelayUser(name="t", password_hash=HASH, profile="p")
    assert anyone.may_send_as("a@anything.test") and anyone.may_send_to("b@anything.test")
