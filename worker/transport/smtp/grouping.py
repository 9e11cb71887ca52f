"""Which servers get a message's content in the same write as the next message's commands.

RFC 2920 §3.1 allows it and it saves a round trip per message in a run, but not
every server survives it: Dovecot 2.3's submission server accepts and relays the
message, then dies on the commands behind it, so the 250 never arrives and the
message looks lost after its data. So grouping is opt-in per profile
(``pipeline_messages = true``), and the first connection lost after a grouped
content turns it off for that server for good: remembered in Redis, so every
worker stops before the message is retried (``DEL`` the key to try again).
"""

from __future__ import annotations

import logging

import redis

from worker import redis_keys
from worker.credentials import Profile
from worker.errors import UnavailableError
from worker.redis_adapter import redis_errors

log = logging.getLogger(__name__)


class Grouping:
    """Remembers, across workers, the servers that must not get grouped messages."""

    def __init__(self, client: redis.Redis | None) -> None:
        self.redis = client
        self._off: set[tuple[str, int]] = set()  # this process's copy: never turned back on

    def allowed(self, profile: Profile) -> bool:
        """Group this profile's messages? Only when it opted in and its server never failed."""
        server = (profile.host, profile.port)
        if not profile.pipeline_messages or server in self._off:
            return False
        if self.redis is None:
            return True
        try:
            with redis_errors(f"SMTP grouping memory of profile '{profile.name}'"):
                off = bool(self.redis.exists(redis_keys.smtp_grouping_off(*server)))
        except UnavailableError:
            return False  # cannot tell: the safe way costs a round trip, not a duplicate
        if off:
            self._off.add(server)
        return not off

    def turn_off(self, profile: Profile) -> None:
        """The connection was lost after a grouped content: never group with this server."""
        server = (profile.host, profile.port)
        self._off.add(server)
        log.warning(
            "profile %s: %s:%d closed the connection after a message's content sent with the "
            "next message's commands; sending each message on its own to this server from now "
            "on (the message may have been delivered: it is retried, not lost)",
            profile.name,
            *server,
        )
        if self.redis is None:
            return
        try:
            with redis_errors(f"SMTP grouping memory of profile '{profile.name}'"):
                self.redis.set(redis_keys.smtp_grouping_off(*server), profile.name)
        except UnavailableError:
            log.warning("profile %s: could not tell the other workers", profile.name)
