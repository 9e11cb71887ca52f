"""The profiles file read once: its parsed TOML, its profiles, and which edit it is.

One file holds the profiles, the HTTP intake's ``[routes.NAME]`` and the relay's
``[relay.users.NAME]``. It is read and parsed here, once per load or reload,
and each section is checked from the same parsed document, so the three never
come from different edits. The profiles are checked here; routes (Jinja
templates) and relay users (Argon2) are checked by the faces that use them,
from ``ProfilesDocument.tables``, which keeps a producer's imports light.
"""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from worker.credentials.profile_secrets import one_line
from worker.credentials.profiles import Profiles
from worker.credentials.profiles_file import check_profiles
from worker.errors import ConfigError


@dataclass(frozen=True)
class ProfilesDocument:
    """One good read of the profiles file; its sections are only read, never changed."""

    path: Path
    # The whole parsed file: routes and relay users are checked from it.
    tables: Mapping[str, Any]
    profiles: Profiles
    # A short digest of the bytes read: which edit is in use (logs, ``serve``).
    version: str


def read_profiles_document(
    path: Path, env: Mapping[str, str], *, secrets: bool = True
) -> ProfilesDocument:
    """Read ``path`` once and check its profiles; ConfigError (one line per problem) if broken.

    ``secrets=False`` (producers): see ``check_profiles``.
    """
    raw = _read(path)
    tables = _parse(path, raw)
    profiles = check_profiles(tables, path, env, secrets=secrets)
    return ProfilesDocument(
        path=path,
        tables=tables,
        profiles=profiles,
        version=hashlib.sha256(raw).hexdigest()[:12],
    )


def load_profiles(path: Path, env: Mapping[str, str], *, secrets: bool = True) -> Profiles:
    """The checked profiles of ``path`` (for callers that need no other section)."""
    return read_profiles_document(path, env, secrets=secrets).profiles


def _parse(path: Path, raw: bytes) -> dict[str, Any]:
    """The one place a profiles file's bytes become TOML, and its errors one line."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte {exc.start} is {exc.object[exc.start]:#04x}); "
            "save the profiles file as UTF-8"
        ) from None
    # Universal newlines, as a file opened as text: a lone \r ends a line too.
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {one_line(str(exc))}") from None


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: profiles file not found (set MAILPIPE_PROFILES_FILE)") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the profiles file: {exc.strerror}") from None
