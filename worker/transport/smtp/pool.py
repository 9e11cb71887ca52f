"""The SMTP transport: authenticated connections reused across messages, per profile, per process.

One pool per worker process (create it after Celery forks). A connection
serves up to ``max_messages_per_connection`` messages, is closed after
``idle_timeout_seconds`` unused, and is checked with NOOP when it sat idle a
while. A reused connection found dead before any data went out (disconnect,
421) is replaced once, transparently. A new connection always authenticates
with the current token; when the server rejects it, the token is dropped in
every process and one fresh token is tried at once.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from providers import PasswordCredentials
from worker.credentials import Credentials, Profile, SmtpCredentials, TokenSource
from worker.errors import UnavailableError
from worker.settings import DEFAULTS, Settings
from worker.transport.attempts import wait_for_slot, with_fresh_token
from worker.transport.base import OutgoingMessage, SendResult
from worker.transport.errors import ConnectionDropped, ConnectionsBusy, SessionError
from worker.transport.outcome import Outcome, outcome
from worker.transport.slots import ConnectionSlots, release
from worker.transport.smtp.grouping import Grouping
from worker.transport.smtp.session import SmtpSession
from worker.transport.tls import ssl_context

log = logging.getLogger(__name__)


@dataclass
class _Pooled:
    session: SmtpSession
    lease: str | None


class SmtpPool:
    """The SMTP ``Transport``: sends over pooled, authenticated connections. Thread-safe."""

    def __init__(
        self,
        credentials: Credentials,
        *,
        slots: ConnectionSlots | None = None,
        grouping: Grouping | None = None,
        timeout_seconds: float = DEFAULTS.smtp_timeout_seconds,
        ehlo_name: str | None = None,
        max_messages_per_connection: int = DEFAULTS.smtp_max_messages_per_connection,
        idle_timeout_seconds: float = DEFAULTS.smtp_idle_timeout_seconds,
        noop_after_seconds: float = DEFAULTS.smtp_noop_after_seconds,
        slot_wait_seconds: float = DEFAULTS.smtp_slot_wait_seconds,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.credentials = credentials
        self.slots = slots
        self.grouping = grouping or Grouping(slots.redis if slots else None)
        self.timeout_seconds = timeout_seconds
        self.ehlo_name = ehlo_name
        self.max_messages_per_connection = max_messages_per_connection
        self.idle_timeout_seconds = idle_timeout_seconds
        self.noop_after_seconds = noop_after_seconds
        self.slot_wait_seconds = slot_wait_seconds
        self._clock = clock
        self._sleep = sleep
        self._idle: dict[str, list[_Pooled]] = {}
        self._contexts: dict[str | None, ssl.SSLContext] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_settings(
        cls, settings: Settings, credentials: Credentials, slots: ConnectionSlots | None
    ) -> SmtpPool:
        return cls(
            credentials,
            slots=slots,
            timeout_seconds=settings.smtp_timeout_seconds,
            max_messages_per_connection=settings.smtp_max_messages_per_connection,
            idle_timeout_seconds=settings.smtp_idle_timeout_seconds,
            noop_after_seconds=settings.smtp_noop_after_seconds,
            slot_wait_seconds=settings.smtp_slot_wait_seconds,
        )

    def send(self, profile: Profile, message: OutgoingMessage) -> SendResult:
        """Send one message and say what happened.

        SMTP trouble is an Outcome, never an exception; credential trouble
        (``ProviderError``, ``TokenCacheError``) is raised, since no SMTP
        reply exists for it.
        """
        first_try = True
        while True:
            try:
                pooled, reused, token = self._checkout(profile)
            except ConnectionsBusy as exc:
                return SendResult(exc.outcome, busy=True)
            except SessionError as exc:
                return SendResult(exc.outcome)
            try:
                result = pooled.session.send(message)
            except ConnectionDropped as exc:
                self._discard(profile, pooled)
                if reused and first_try:
                    log.info("profile %s: pooled connection was dead, replacing it", profile.name)
                    first_try = False
                    continue
                return SendResult(exc.outcome, reused, *token)
            except BaseException:
                # A time limit or a bug: the connection's state is unknown, maybe
                # mid-DATA, where a QUIT would be read as content: close it, no QUIT.
                pooled.session.broken = True
                self._discard(profile, pooled)
                raise
            self._give_back(profile, pooled)
            return SendResult(result, reused, *token)

    def send_many(
        self, profile: Profile, messages: Sequence[OutgoingMessage]
    ) -> Iterator[SendResult]:
        """Send several messages over one connection; a result for each, in order.

        Each transaction is pipelined (MAIL, RCPT, DATA in one write); a message's
        content goes with the next message's commands only where ``Grouping`` allows.

        As ``send`` for each message. A connection lost before a message went
        out is replaced once for it; if the new one fails too, that message
        gets the failure and the rest are returned untried (``busy``).
        """
        index, replaced_at = 0, -1
        group = self.grouping.allowed(profile)
        while index < len(messages):
            try:
                pooled, reused, token = self._checkout(profile)
            except (ConnectionsBusy, SessionError) as exc:
                busy = isinstance(exc, ConnectionsBusy)
                yield from (SendResult(exc.outcome, busy=busy) for _ in messages[index:])
                return
            session = pooled.session
            room = max(1, self.max_messages_per_connection - session.messages_sent)
            sent_here = 0
            try:
                for result in session.send_many(messages[index : index + room], group=group):
                    if session.lost_grouped_content and group:
                        self.grouping.turn_off(profile)  # before anyone retries the message
                        group = False
                    first = sent_here == 0
                    yield SendResult(
                        result, reused or not first, *(token if first else (None, None))
                    )
                    sent_here += 1
                    index += 1
            except ConnectionDropped as exc:
                self._discard(profile, pooled)
                if (reused or sent_here) and replaced_at != index:
                    log.info("profile %s: connection was dead, replacing it", profile.name)
                    replaced_at = index
                    continue
                yield SendResult(exc.outcome, reused, *token)
                untried = _untried(profile, exc.outcome)
                yield from (SendResult(untried, busy=True) for _ in messages[index + 1 :])
                return
            except BaseException:
                # A time limit, a bug, or the caller stopped early: state unknown,
                # maybe after a 354 (a QUIT would be read as content): no QUIT.
                session.broken = True
                self._discard(profile, pooled)
                raise
            self._give_back(profile, pooled)

    def close(self) -> None:
        """Close every idle connection (worker shutdown)."""
        with self._lock:
            idle, self._idle = self._idle, {}
        for sessions in idle.values():
            for pooled in sessions:
                self._discard(pooled.session.profile, pooled)

    # -- internals -----------------------------------------------------------

    def _checkout(
        self, profile: Profile
    ) -> tuple[_Pooled, bool, tuple[TokenSource | None, float | None]]:
        """An idle connection of ours, else a new one if the profile's cap allows.

        At the cap, wait for whichever comes first: one of this process's
        connections coming back, or another worker freeing a slot.
        """
        self._reap_idle()
        pooled, lease = wait_for_slot(
            self.slots,
            profile,
            wait_seconds=self.slot_wait_seconds,
            sleep=self._sleep,
            busy=f"all {profile.max_connections} connections allowed for this "
            "mailbox are in use by other workers",
            idle=lambda: self._take_idle(profile),
        )
        if pooled is not None:
            return pooled, True, (None, None)
        opened, token = self._open(profile, lease)
        return opened, False, token

    def _reap_idle(self) -> None:
        """Close every profile's connections idle past the timeout: they hold slots."""
        now = self._clock()
        expired: list[_Pooled] = []
        with self._lock:
            for sessions in self._idle.values():
                keep = [
                    p for p in sessions if now - p.session.last_used <= self.idle_timeout_seconds
                ]
                expired += [p for p in sessions if p not in keep]
                sessions[:] = keep
        for pooled in expired:
            # Its own profile: the slot it holds is counted under that profile's name.
            self._discard(pooled.session.profile, pooled)

    def _take_idle(self, profile: Profile) -> _Pooled | None:
        while True:
            with self._lock:
                sessions = self._idle.get(profile.name)
                pooled = sessions.pop() if sessions else None
            if pooled is None:
                return None
            idle = self._clock() - pooled.session.last_used
            # Made for another version of the profile (the profiles file changed):
            # its host, port or credentials may be stale.
            if pooled.session.profile is not profile:
                self._discard(profile, pooled)
                continue
            if idle > self.idle_timeout_seconds or (
                idle > self.noop_after_seconds and not pooled.session.alive()
            ):
                self._discard(profile, pooled)
                continue
            if pooled.lease and self.slots and not self._renew(profile, pooled.lease):
                self._discard(profile, pooled)
                continue
            return pooled

    def _open(
        self, profile: Profile, lease: str | None
    ) -> tuple[_Pooled, tuple[TokenSource | None, float | None]]:
        try:
            session = SmtpSession(
                profile,
                self._context(profile),  # a bad ca_file fails here
                timeout_seconds=self.timeout_seconds,
                ehlo_name=self.ehlo_name,
                clock=self._clock,
            )
        except BaseException:
            release(self.slots, profile, lease)
            raise
        pooled = _Pooled(session, lease)
        try:
            token = self._connect_and_authenticate(profile, session)
        except BaseException:
            # SMTP trouble, or a credentials error on its way to the caller:
            # either way the slot must not leak.
            self._discard(profile, pooled)
            raise
        return pooled, token

    def _connect_and_authenticate(
        self, profile: Profile, session: SmtpSession
    ) -> tuple[TokenSource | None, float | None]:
        # The token first (``with_fresh_token`` gets it before ``log_in`` connects):
        # waiting for it must not hold an open connection, which counts against
        # the mailbox's connection limit. A fresh token goes on a new connection.
        refused, credentials, elapsed = with_fresh_token(
            self.credentials,
            profile,
            lambda given: _log_in(session, given),
            lambda refused: None if refused is None else str(refused),
        )
        if refused is not None:
            raise refused
        if isinstance(credentials, PasswordCredentials):
            return None, None
        return credentials.source, elapsed

    def _give_back(self, profile: Profile, pooled: _Pooled) -> None:
        session = pooled.session
        if session.broken or session.messages_sent >= self.max_messages_per_connection:
            self._discard(profile, pooled)
            return
        with self._lock:
            self._idle.setdefault(profile.name, []).append(pooled)

    def _discard(self, profile: Profile, pooled: _Pooled) -> None:
        pooled.session.close()
        release(self.slots, profile, pooled.lease)
        pooled.lease = None

    def _renew(self, profile: Profile, lease: str) -> bool:
        assert self.slots is not None
        try:
            return self.slots.renew(profile.name, lease)
        except UnavailableError:
            return False

    def _context(self, profile: Profile) -> ssl.SSLContext:
        # Loading the CA store costs milliseconds: once per CA file per process (a
        # reloaded profile with another ca_file gets its own).
        key = str(profile.ca_file) if profile.ca_file else None
        context = self._contexts.get(key)
        if context is None:
            context = self._contexts[key] = ssl_context(profile)
        return context


def _log_in(session: SmtpSession, credentials: SmtpCredentials) -> SessionError | None:
    """Connect and authenticate; the server's refusal of a token is returned, not raised."""
    session.connect()
    try:
        session.authenticate(credentials)
    except SessionError as exc:
        if exc.outcome.kind != "auth_rejected":
            raise
        if isinstance(credentials, PasswordCredentials):
            # No fresh credential exists, and repeated wrong passwords
            # lock accounts: a person has to fix this.
            raise SessionError(
                "auth", exc.reply or exc.message, kind="permanent", hint=exc.hint
            ) from None
        return exc
    return None


def _untried(profile: Profile, cause: Outcome) -> Outcome:
    """For the rest of a run of messages after the connection failed: not tried, not an attempt."""
    return outcome(
        "connect",
        SessionError(
            "connect", f"not tried: the connection to {profile.host} failed ({cause.text})"
        ),
    )
