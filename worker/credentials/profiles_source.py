"""The profiles file as a running process sees it: loaded again when it changes.

Workers and ``serve`` pick up an edited profiles file without a restart: at
most every ``check_every_seconds`` the file's modification time and size are
compared with what was loaded; a changed file is loaded and checked whole,
and only a good one replaces the profiles in use. A broken edit is logged,
one line per problem, and the last good profiles stay in use.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from worker.credentials.profiles import Profiles
from worker.credentials.profiles_file import load_profiles
from worker.errors import ConfigError

log = logging.getLogger(__name__)


class ProfilesFile:
    """Thread-safe; ``current()`` is cheap enough to call for every message."""

    def __init__(
        self,
        path: Path,
        env: Mapping[str, str],
        *,
        secrets: bool = True,
        check_every_seconds: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self._env = env
        self._secrets = secrets
        self._every = check_every_seconds
        self._clock = clock
        self._guard = threading.Lock()
        self._profiles = load_profiles(path, env, secrets=secrets)  # a broken file stops the start
        self._seen = self._stamp()
        self.version = _version(path)
        self._checked_at = clock()

    def current(self) -> Profiles:
        """The profiles in use, after looking for a change if it is time to."""
        if self._clock() - self._checked_at >= self._every:
            self._reload_if_changed()
        return self._profiles

    def _reload_if_changed(self) -> None:
        with self._guard:
            if self._clock() - self._checked_at < self._every:
                return
            self._checked_at = self._clock()
            stamp = self._stamp()
            if stamp == self._seen:
                return
            self._seen = stamp  # a broken edit is reported once, not every check
            try:
                profiles = load_profiles(self.path, self._env, secrets=self._secrets)
            except ConfigError as exc:
                for line in str(exc).splitlines():
                    log.error("profiles file not reloaded, the last good one stays: %s", line)
                return
            self._profiles, self.version = profiles, _version(self.path)
            log.info("profiles file %s reloaded: version %s", self.path, self.version)

    def _stamp(self) -> tuple[float, int] | None:
        try:
            stat = self.path.stat()
        except OSError:
            return None
        return stat.st_mtime, stat.st_size


def _version(path: Path) -> str:
    """A short digest of the file's bytes: which edit is in use (logs, ``serve``)."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    except OSError:
        return "unreadable"
