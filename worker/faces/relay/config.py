"""The relay's users as the running relay sees them: they follow the profiles file."""

from __future__ import annotations

import logging

from worker.errors import ConfigError
from worker.faces.relay.users import RelayUser, relay_users_of
from worker.queue import Producer

log = logging.getLogger("mailpipe.relay")


class RelayUsers:
    """Loaded at start (a problem stops the relay); again when the profiles file changes.

    An edit whose relay users do not load keeps the last good ones (and the
    reason is logged), like the profiles themselves.
    """

    def __init__(self, runtime: Producer) -> None:
        self.runtime = runtime
        self._document = runtime.profiles_file.document()
        self._users = relay_users_of(self._document)

    def __len__(self) -> int:
        return len(self._users)

    def get(self, name: object) -> RelayUser | None:
        if not isinstance(name, str):
            return None
        document = self.runtime.profiles_file.document()  # looks for an edited file
        if document is not self._document:
            self._document = document
            try:
                self._users = relay_users_of(document)
            except ConfigError as exc:
                for line in str(exc).splitlines():
                    log.error("relay users not reloaded, the last good ones stay: %s", line)
        return self._users.get(name)
