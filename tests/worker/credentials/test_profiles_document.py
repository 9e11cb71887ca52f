"""The one read of the profiles file: its bytes as TOML, which edit it is, and why it failed."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from worker.credentials import read_profiles_document
from worker.errors import ConfigError

DOCUMENT = '''
[profiles.alerts]
host = "smtp.example.test"
from_email = "alerts@example.test"
auth = "password"
username = "alerts"
password = "profiles-document-password"

[routes.oncall]
profile = "alerts"
to = ["oncall@example.test"]
text_template = """
{{ status }}
{{ payload.title }}
"""
'''


@pytest.mark.parametrize("newline", ["\r\n", "\r"], ids=["windows", "old-mac"])
def test_a_file_saved_with_other_line_endings_reads_as_with_newlines(
    tmp_path: Path, newline: str
) -> None:
    """An editor's line endings change nothing, not even inside a multi-line template."""
    plain, other = tmp_path / "plain.toml", tmp_path / "other.toml"
    plain.write_bytes(DOCUMENT.encode())
    other.write_bytes(DOCUMENT.replace("\n", newline).encode())

    document = read_profiles_document(other, {})

    assert document.tables == read_profiles_document(plain, {}).tables
    template = document.tables["routes"]["oncall"]["text_template"]
    assert template == "{{ status }}\n{{ payload.title }}\n"
    assert document.profiles.get("alerts").from_email == "alerts@example.test"


def test_the_version_is_the_short_sha256_of_the_bytes_read(tmp_path: Path) -> None:
    """So the edit a worker logs can be told with ``sha256sum`` on the file."""
    path = tmp_path / "profiles.toml"
    path.write_bytes(DOCUMENT.encode())
    first = read_profiles_document(path, {}).version

    assert first == hashlib.sha256(DOCUMENT.encode()).hexdigest()[:12]
    assert read_profiles_document(path, {}).version == first, "the same bytes, the same edit"
    path.write_bytes(DOCUMENT.replace("alerts@", "oncall@").encode())
    assert read_profiles_document(path, {}).version != first


def test_invalid_toml_says_where(tmp_path: Path) -> None:
    path = tmp_path / "profiles.toml"
    path.write_text(DOCUMENT + "[relay\n")
    with pytest.raises(ConfigError) as caught:
        read_profiles_document(path, {})
    message = str(caught.value)
    assert message.startswith(f"{path}: not valid TOML: ") and len(message.splitlines()) == 1
    line = DOCUMENT.count("\n") + 1
    assert f"(at line {line}, column " in message, message


def test_a_profiles_file_that_cannot_be_read_says_why(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        read_profiles_document(tmp_path, {})  # a directory, not a file
    assert str(caught.value) == f"{tmp_path}: cannot read the profiles file: Is a directory"


def test_a_worker_reads_every_secret_and_a_producer_none(tmp_path: Path) -> None:
    """By default (a worker, the relay, the CLI) a secret that is missing stops the read."""
    path = tmp_path / "profiles.toml"
    path.write_text(DOCUMENT.replace('password = "', 'password_env = "NOT_SET_ANYWHERE"\n# "'))
    with pytest.raises(ConfigError) as caught:
        read_profiles_document(path, {})
    assert str(caught.value) == (
        f"{path}: profile 'alerts', field 'password_env': "
        "environment variable NOT_SET_ANYWHERE is not set"
    )
    producer = read_profiles_document(path, {}, secrets=False)
    assert producer.profiles.get("alerts").password is None
