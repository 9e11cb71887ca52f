"""A reload of the profiles file reads it once: profiles, routes and relay users from one read."""

from __future__ import annotations

import logging
import os
import tomllib
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from argon2 import PasswordHasher

from tests.fakes.clock import Clock
from worker.credentials import ProfilesFile
from worker.faces.http.deps import Intake
from worker.faces.relay.config import RelayUsers

HASH = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash("right")
FILE = """
[profiles.{profile}]
host = "smtp.example.test"
from_email = "alerts@example.test"
auth = "password"
username = "alerts"
password = "profiles-reload-password"

[routes.oncall]
profile = "{route_profile}"
to = ["oncall@example.test"]

[relay.users.app]
password_hash = "{hash}"
profile = "{profile}"
"""


def write(path: Path, profile: str, route_profile: str | None = None) -> None:
    path.write_text(FILE.format(profile=profile, route_profile=route_profile or profile, hash=HASH))
    stat = path.stat()  # a new modification time even within the file system's resolution
    os.utime(path, (stat.st_atime, stat.st_mtime + 1))


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Each parse of a TOML text, wherever it happens."""
    seen: list[str] = []
    real = tomllib.loads

    def loads(text: str, **kwargs: Any) -> dict[str, Any]:
        seen.append(text)
        return real(text, **kwargs)

    monkeypatch.setattr(tomllib, "loads", loads)
    return seen


def runtime_for(path: Path, clock: Clock) -> Any:
    """What Intake and RelayUsers read of a producer: its profiles file and settings."""
    source = ProfilesFile(path, {}, check_every_seconds=1, clock=clock)
    settings = SimpleNamespace(callback_policy=lambda: None)
    return SimpleNamespace(profiles_file=source, settings=settings, profiles=source.current())


def test_an_edit_is_read_once_for_profiles_routes_and_relay_users(
    tmp_path: Path, parses: list[str]
) -> None:
    path, clock = tmp_path / "profiles.toml", Clock()
    write(path, "old")
    runtime = runtime_for(path, clock)
    intake = Intake(runtime, keys=None)  # type: ignore[arg-type]
    users = RelayUsers(runtime)
    assert len(parses) == 1

    write(path, "new")
    clock.now = 1.0
    assert runtime.profiles_file.current().get("new").name == "new"
    assert intake.routes["oncall"].profile == "new"
    assert users.get("app") is not None and users.get("app").profile == "new"
    assert len(parses) == 2, "one parse at start, one for the edit"


def test_routes_that_no_longer_load_keep_the_last_good_ones_with_the_profiles_of_the_edit(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path, clock = tmp_path / "profiles.toml", Clock()
    write(path, "old")
    runtime = runtime_for(path, clock)
    intake = Intake(runtime, keys=None)  # type: ignore[arg-type]
    first = intake.routes

    write(path, "new", route_profile="gone")
    clock.now = 1.0
    with caplog.at_level(logging.ERROR):
        assert intake.routes is first
        assert intake.routes is first
    assert runtime.profiles_file.current().get("new").name == "new"
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "route 'oncall', field 'profile'" in errors[0]
