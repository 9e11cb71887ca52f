"""An edited profiles file is picked up without a restart; a broken edit keeps the last good one."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from tests.fakes.clock import Clock
from worker.credentials import ProfilesFile

PROFILE = """
[profiles.alerts]
host = "smtp.example.test"
from_email = "alerts@example.test"
from_name = "{name}"
auth = "password"
username = "alerts"
password = "profiles-source-password"
"""


def edit(path: Path, text: str) -> None:
    path.write_text(text)
    stat = path.stat()  # a new modification time even within the file system's resolution
    os.utime(path, (stat.st_atime, stat.st_mtime + 1))


def test_an_edited_file_is_used_after_the_next_check(tmp_path: Path) -> None:
    path, clock = tmp_path / "profiles.toml", Clock()
    path.write_text(PROFILE.format(name="Old"))
    source = ProfilesFile(path, {}, check_every_seconds=2, clock=clock)
    first_version = source.version

    edit(path, PROFILE.format(name="New"))
    assert source.current().get("alerts").from_name == "Old", "not checked again yet"
    clock.now = 2.0
    assert source.current().get("alerts").from_name == "New"
    assert source.version != first_version


def test_a_broken_edit_keeps_the_last_good_profiles_and_says_why_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path, clock = tmp_path / "profiles.toml", Clock()
    path.write_text(PROFILE.format(name="Good"))
    source = ProfilesFile(path, {}, check_every_seconds=1, clock=clock)
    good = source.current()

    edit(path, PROFILE.format(name="Broken").replace('auth = "password"', 'auth = "magic"'))
    with caplog.at_level(logging.ERROR):
        clock.now = 1.0
        assert source.current() is good
        clock.now = 2.0
        assert source.current() is good
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "field 'auth'" in errors[0]
    assert "profiles-source-password" not in errors[0]
