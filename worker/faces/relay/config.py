"""The relay's users as the running relay sees them: they follow the profiles file."""

from __future__ import annotations

import logging

from worker.credentials.profiles_source import Section
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
        self._users = Section(runtime.profiles_file, relay_users_of, what="relay users", log=log)

    def __len__(self) -> int:
        return len(self._users.current())

    def get(self, name: object) -> RelayUser | None:
        if not isinstance(name, str):
            return None
        return self._users.current().get(name)
