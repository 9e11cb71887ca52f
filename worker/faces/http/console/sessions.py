"""Console sign-in: sessions held by the serve process, each with its own CSRF token.

A session cookie holds only a random id; the API key a person signed in with
is checked once (``ApiKeys.caller``) and never stored, and the Caller it gave
is kept with the session, so every page applies the key's limits. Sessions
live in the process: a restart signs everyone out, and several serve
processes behind one address need sticky sessions. A keyless intake (loopback
only) gives every visitor a session at once, as the keyless caller: there is
no sign-in, but forms still carry a CSRF token, because any web page the
operator opens could post to a loopback address.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from worker.faces.http.keys import Caller

COOKIE = "mailpipe_console"
SESSION_SECONDS = 12 * 3600
MAX_SESSIONS = 10_000


@dataclass(frozen=True)
class Session:
    id: str
    csrf: str
    # None: not signed in yet (a login form's session, for its CSRF token).
    caller: Caller | None
    expires_at: float

    def csrf_matches(self, presented: str | None) -> bool:
        return bool(presented) and hmac.compare_digest(self.csrf, presented or "")


class Sessions:
    """Session id → Session, expiring; the oldest are dropped past ``max_sessions``."""

    def __init__(
        self,
        *,
        seconds: float = SESSION_SECONDS,
        max_sessions: int = MAX_SESSIONS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._seconds = seconds
        self._max = max_sessions
        self._clock = clock
        self._lock = threading.Lock()
        self._sessions: dict[str, Session] = {}

    def get(self, session_id: str | None) -> Session | None:
        if not session_id:
            return None
        with self._lock:
            session = self._sessions.get(session_id)
            if session is not None and session.expires_at <= self._clock():
                del self._sessions[session_id]
                return None
            return session

    def new(self, caller: Caller | None) -> Session:
        """A fresh session (a new id at every sign-in: an id set before it is worth nothing)."""
        session = Session(
            id=secrets.token_urlsafe(32),
            csrf=secrets.token_urlsafe(32),
            caller=caller,
            expires_at=self._clock() + self._seconds,
        )
        with self._lock:
            if len(self._sessions) >= self._max:
                now = self._clock()
                self._sessions = {k: s for k, s in self._sessions.items() if s.expires_at > now}
                while len(self._sessions) >= self._max:  # dicts keep insertion order
                    del self._sessions[next(iter(self._sessions))]
            self._sessions[session.id] = session
        return session

    def drop(self, session_id: str) -> None:
        with self._lock:
            self._sessions.pop(session_id, None)
