"""The relay's users as the running relay sees them: they follow the profiles file."""

from __future__ import annotations

import logging

from worker.errors import ConfigError
from worker.faces.relay.users import RelayUser, load_relay_users
from worker.queue import Producer

log = logging.getLogger("mailpipe.relay")


class RelayUsers:
    """Loaded at start (a problem stops the relay); again when the profiles file changes.

    An edit whose relay users do not load keeps the last good ones (and the
    reason is logged), like the profiles themselves.
    """

    def __init__(self, runtime: Producer) -> None:
        self.runtime = runtime
        self._users = self._load()
        self._version = runtime.profiles_file.version

    def __len__(self) -> int:
        return len(self._users)

    def get(self, name: object) -> RelayUser | None:
        if not isinstance(name, str):
            return None
        self.runtime.profiles  # noqa: B018 (looks for an edited file)
        version = self.runtime.profiles_file.version
        if version != self._version:
            self._version = version
            try:
                self._users = self._load()
            except ConfigError as exc:
                for line in str(exc).splitlines():
                    log.error("relay users not reloaded, the last good ones stay: %s", line)
        return self._users.get(name)

    def _load(self) -> dict[str, RelayUser]:
        profiles = self.runtime.profiles
        return load_relay_users(self.runtime.profiles_file.path, list(profiles.by_name))
