"""The profiles file as a running process sees it: loaded again when it changes.

Workers and ``serve`` pick up an edited profiles file without a restart: at
most every ``check_every_seconds`` the file's modification time and size are
compared with what was loaded; a changed file is read once and its profiles
checked, and only a good one replaces the document in use (profiles, and the
tables routes and relay users are checked from). A broken edit is logged,
one line per problem, and the last good document stays in use.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Generic, TypeVar

from worker.credentials.profiles import Profiles
from worker.credentials.profiles_document import ProfilesDocument, read_profiles_document
from worker.errors import ConfigError

log = logging.getLogger(__name__)

T = TypeVar("T")


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
        self._seen = self._stamp()  # before the read: an edit while reading is read again
        self._document = self._read()  # a broken file stops the start
        self._checked_at = clock()

    def current(self) -> Profiles:
        """The profiles in use, after looking for a change if it is time to."""
        return self.document().profiles

    def document(self) -> ProfilesDocument:
        """The whole file in use: its profiles and the tables of its other sections."""
        if self._clock() - self._checked_at >= self._every:
            self._reload_if_changed()
        return self._document

    @property
    def version(self) -> str:
        """Which edit is in use (a digest of the bytes the document was read from)."""
        return self._document.version

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
                document = self._read()
            except ConfigError as exc:
                for line in str(exc).splitlines():
                    log.error("profiles file not reloaded, the last good one stays: %s", line)
                return
            self._document = document
            log.info("profiles file %s reloaded: version %s", self.path, self.version)

    def _read(self) -> ProfilesDocument:
        return read_profiles_document(self.path, self._env, secrets=self._secrets)

    def _stamp(self) -> tuple[float, int] | None:
        try:
            stat = self.path.stat()
        except OSError:
            return None
        return stat.st_mtime, stat.st_size


class Section(Generic[T]):
    """Another section of the profiles file (the routes, the relay users) as a process sees it.

    ``check`` builds it from the document in use (a ConfigError then is the caller's), and
    again whenever an edit replaces the document. An edit whose section does not check
    keeps the last good one, each problem logged once, as an edit whose profiles do not
    check keeps the last good profiles.
    """

    def __init__(
        self,
        source: ProfilesFile,
        check: Callable[[ProfilesDocument], T],
        *,
        what: str,
        log: logging.Logger,
    ) -> None:
        self._source, self._check, self._what, self._log = source, check, what, log
        self._document = source.document()
        self._value = check(self._document)

    def current(self) -> T:
        document = self._source.document()  # looks for an edited file
        if document is not self._document:
            self._document = document
            try:
                self._value = self._check(document)
            except ConfigError as exc:
                for line in str(exc).splitlines():
                    self._log.error(
                        "%s not reloaded, the last good ones stay: %s", self._what, line
                    )
        return self._value
