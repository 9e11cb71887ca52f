"""Relay users: ``[relay.users.NAME]`` tables of the profiles file, passwords as Argon2 hashes.

Each user is bound to one profile (the mailbox that sends its mail) and may
be limited to sender and recipient domains. The file holds only hashes,
made by ``mailpipe relay hash-password``.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from worker.credentials.profiles_document import ProfilesDocument
from worker.errors import ConfigError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,63}$")
_DOMAIN = re.compile(r"^(\*\.)?[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
_FIELDS = (
    "password_hash",
    "profile",
    "sender_domains",
    "recipient_domains",
    "priority",
    "rewrite_from",
)
_HASHER = PasswordHasher()

Priority = Literal["normal", "high"]


def hash_password(password: str) -> str:
    """The Argon2id hash ``[relay.users.NAME] password_hash`` holds."""
    return _HASHER.hash(password)


@dataclass(frozen=True)
class RelayUser:
    name: str
    password_hash: str
    profile: str
    sender_domains: tuple[str, ...] = ()  # empty: any
    recipient_domains: tuple[str, ...] = ()
    priority: Priority = "normal"
    # A visible From or Sender outside sender_domains (and not the profile's own
    # address) is replaced by the profile's, the original kept as Reply-To.
    rewrite_from: bool = True

    def password_ok(self, password: str) -> bool:
        try:
            return _HASHER.verify(self.password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    def may_send_as(self, address: str) -> bool:
        return _in_domains(address, self.sender_domains)

    def may_send_to(self, address: str) -> bool:
        return _in_domains(address, self.recipient_domains)

    def may_show_as(self, address: str) -> bool:
        """May the visible From or Sender say ``address``? Never a domain it was not given."""
        if not self.rewrite_from:
            return True
        return bool(self.sender_domains) and _in_domains(address, self.sender_domains)


def _in_domains(address: str, domains: tuple[str, ...]) -> bool:
    if not domains:
        return True
    domain = address.rpartition("@")[2].lower()
    return any(domain == d or (d.startswith("*.") and domain.endswith(d[1:])) for d in domains)


def relay_users_of(document: ProfilesDocument) -> dict[str, RelayUser]:
    """The relay users of the profiles file read as ``document``, checked against its profiles."""
    return load_relay_users(
        document.tables, path=document.path, profile_names=document.profiles.by_name
    )


def load_relay_users(
    document: Mapping[str, Any], *, path: Path, profile_names: Collection[str]
) -> dict[str, RelayUser]:
    """Every ``[relay.users.NAME]`` of the parsed profiles file at ``path``; ConfigError lists all.

    ``path`` only names the file in the problems.
    """
    relay = document.get("relay", {})
    tables = relay.get("users", {}) if isinstance(relay, Mapping) else None
    if not isinstance(tables, Mapping):
        raise ConfigError(f"{path}: [relay.users.NAME] must be tables")
    problems: list[str] = []
    users = {}
    for name, table in tables.items():
        found = [f"{path}: relay user '{name}', {p}" for p in _problems(name, table, profile_names)]
        problems += found
        if not found:
            users[name] = _user(name, table)
    if problems:
        raise ConfigError("\n".join(problems))
    return users


def _problems(name: str, table: Any, profile_names: Collection[str]) -> list[str]:
    if not _NAME.match(name):
        return ["names may use letters, digits, '.', '_', '@', '+' and '-' (64 at most)"]
    if not isinstance(table, Mapping):
        return ["must be a table"]
    problems = [f"field '{f}': unknown field" for f in table if f not in _FIELDS]
    hashed = table.get("password_hash")
    if not isinstance(hashed, str) or not hashed.startswith("$argon2"):
        problems.append(
            "field 'password_hash': missing or not an Argon2 hash "
            "(make one with `mailpipe relay hash-password`)"
        )
    profile = table.get("profile")
    if profile not in profile_names:
        known = ", ".join(sorted(profile_names)) or "none"
        problems.append(f"field 'profile': unknown profile {profile!r} (profiles: {known})")
    for field in ("sender_domains", "recipient_domains"):
        value = table.get(field, [])
        if not isinstance(value, list) or not all(
            isinstance(d, str) and _DOMAIN.match(d) for d in value
        ):
            problems.append(f"field '{field}': a list of domains, like [\"example.com\"]")
    if table.get("priority", "normal") not in ("normal", "high"):
        problems.append("field 'priority': 'normal' or 'high'")
    if not isinstance(table.get("rewrite_from", True), bool):
        problems.append("field 'rewrite_from': true or false")
    return problems


def _user(name: str, table: Mapping[str, Any]) -> RelayUser:
    return RelayUser(
        name=name,
        password_hash=table["password_hash"],
        profile=table["profile"],
        sender_domains=tuple(d.lower() for d in table.get("sender_domains", [])),
        recipient_domains=tuple(d.lower() for d in table.get("recipient_domains", [])),
        priority=table.get("priority", "normal"),
        rewrite_from=table.get("rewrite_from", True),
    )
