"""A real SMTP server on 127.0.0.1 for the tests, scripted per test.

aiosmtpd runs in a thread. The server checks OAuth bearer tokens (XOAUTH2, OAUTHBEARER) and
passwords (PLAIN, LOGIN), answers failures the way Gmail does, records every session and
message, and can be told to refuse, to drop the connection after DATA, or to close every
connection as an idle timeout would.

This module is the public face: FakeSmtpServer and its script live here, and the names the
tests import from the parts are re-exported. The parts, beside it in tests/fakes/: smtp_tls.py
(the test CA), smtp_records.py (what is recorded), smtp_protocol.py (the aiosmtpd connection,
controller and hooks) and smtp_auth.py (AUTH: bearer tokens and passwords).
"""

from __future__ import annotations

import asyncio
import collections
import re
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any

from aiosmtpd.smtp import Envelope

from tests.fakes.smtp_auth import MECHANISMS
from tests.fakes.smtp_protocol import Connection, FakeController, Handler
from tests.fakes.smtp_records import ReceivedMessage, SessionRecord
from tests.fakes.smtp_tls import TlsFiles, make_tls

__all__ = [
    "FakeSmtpServer",
    "ReceivedMessage",
    "ServerFactory",
    "SessionRecord",
    "TlsFiles",
    "make_tls",
]

PHASES = ("mail", "rcpt", "data", "auth")


class FakeSmtpServer:
    def __init__(
        self,
        *,
        tls: TlsFiles | None,
        security: str = "starttls",  # "starttls" | "tls" (implicit) | "none"
        token_ok: Callable[[str, str], bool] = lambda user, token: False,
        passwords: dict[str, str] | None = None,
        mechanisms: tuple[str, ...] = MECHANISMS,  # () offers no AUTH at all
        auth_required: bool = True,
        smtputf8: bool = True,
        gmail_style_failure: bool = True,
        max_initial_response: int | None = None,
        pipelining: bool = True,
        dsn: bool = False,
    ) -> None:
        if security not in ("starttls", "tls", "none"):
            raise ValueError(f"security must be starttls, tls or none, not {security!r}")
        if security != "none" and tls is None:
            raise ValueError(f"security={security!r} needs tls=make_tls(...)")
        if unknown := set(mechanisms) - set(MECHANISMS):
            raise ValueError(f"unsupported mechanisms: {sorted(unknown)}")
        self.tls = tls
        self.security = security
        self.token_ok = token_ok
        self.passwords = dict(passwords or {})
        self.mechanisms = mechanisms
        self.auth_required = auth_required
        self.smtputf8 = smtputf8
        self.gmail_style_failure = gmail_style_failure
        self.max_initial_response = max_initial_response
        self.pipelining = pipelining
        self.dsn = dsn
        self.host = "127.0.0.1"
        self.port = 0  # set by start(); a restart keeps the port
        self.sessions: list[SessionRecord] = []
        self.messages: list[ReceivedMessage] = []
        self.auth_failures: list[dict[str, Any]] = []
        self.rcpt_commands = 0
        self.rcpt_delay_seconds = 0.0  # settable while running
        # One lock for the script and the records; the condition wakes wait_closed() and stop().
        self._lock = threading.Condition()
        self._script: dict[str, collections.deque[str]] = {p: collections.deque() for p in PHASES}
        self._refused: dict[str, str] = {}
        self._drops = 0
        self._live: set[Connection] = set()
        self._probe_peer: tuple[Any, ...] | None = None
        self._controller: FakeController | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        if self._controller is not None:
            raise RuntimeError("FakeSmtpServer is already running")
        handler = Handler(self)
        kwargs: dict[str, Any] = {}
        if self.security == "starttls":
            assert self.tls is not None
            kwargs.update(
                tls_context=self.tls.server_context, require_starttls=True, auth_require_tls=True
            )
        elif self.security == "tls":
            assert self.tls is not None
            # aiosmtpd only counts STARTTLS as TLS for auth_require_tls; here every byte is TLS.
            kwargs.update(ssl_context=self.tls.server_context, auth_require_tls=False)
        else:
            kwargs.update(auth_require_tls=False)
        controller = FakeController(
            self,
            handler,
            hostname=self.host,
            port=self.port,
            server_hostname="smtp.fake.test",
            ident="ESMTP fake server for mailpipe tests",
            enable_SMTPUTF8=self.smtputf8,
            # Enforced by Connection.check_auth_needed: aiosmtpd's own flag warns when
            # combined with auth_require_tls=False, and warnings are errors here.
            auth_required=False,
            authenticator=handler.check_password,
            auth_exclude_mechanism=[m for m in MECHANISMS if m not in self.mechanisms],
            **kwargs,
        )
        controller.start()
        self.port = controller.port
        self._controller = controller

    def stop(self) -> None:
        controller, self._controller = self._controller, None
        if controller is None:
            return
        # No transport may outlive the event loop (that would be a ResourceWarning).
        self._abort_all(controller)
        controller.stop()

    def __enter__(self) -> FakeSmtpServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def wait_closed(self, timeout: float = 5.0) -> None:
        """Wait until every recorded session is closed (the server sees QUIT's close late)."""
        with self._lock:
            if not self._lock.wait_for(lambda: all(s.closed for s in self.sessions), timeout):
                raise TimeoutError("some SMTP sessions are still open")

    # -- scripting -------------------------------------------------------------------------

    def fail_next(self, phase: str, reply: str, count: int = 1) -> None:
        """Answer the next `count` commands of `phase` with `reply`; a 421 also disconnects."""
        if phase not in PHASES:
            raise ValueError(f"phase must be one of {PHASES}, not {phase!r}")
        _check_reply(reply)
        with self._lock:
            self._script[phase].extend([reply] * count)

    def fail_recipient(self, address: str, reply: str) -> None:
        """Answer every RCPT TO this address with `reply`, until reset_script()."""
        _check_reply(reply)
        with self._lock:
            self._refused[address.lower()] = reply

    def drop_after_data(self, count: int = 1) -> None:
        """Record the next `count` messages, then close without the final reply to DATA."""
        with self._lock:
            self._drops += count

    def drop_connections(self) -> None:
        """Close every open client connection now, as a server-side idle timeout does.

        Returns once they are closed. The server keeps listening."""
        if self._controller is not None:
            self._abort_all(self._controller)

    def reset_script(self) -> None:
        with self._lock:
            for replies in self._script.values():
                replies.clear()
            self._refused.clear()
            self._drops = 0

    # -- used from the server thread -------------------------------------------------------

    def _take(self, phase: str) -> str | None:
        with self._lock:
            replies = self._script[phase]
            return replies.popleft() if replies else None

    def _refusal(self, address: str) -> str | None:
        with self._lock:
            return self._refused.get(address.lower())

    def _take_drop(self) -> bool:
        with self._lock:
            if self._drops:
                self._drops -= 1
                return True
            return False

    def _opened(self, connection: Connection) -> None:
        with self._lock:
            self._live.add(connection)
            if connection.record.peer != self._probe_peer:
                connection.index = len(self.sessions)
                self.sessions.append(connection.record)

    def _closed(self, connection: Connection) -> None:
        with self._lock:
            connection.record.closed = True
            self._live.discard(connection)
            self._lock.notify_all()

    def _deliver(self, connection: Connection, envelope: Envelope) -> None:
        message = ReceivedMessage(
            session=connection.index,
            mail_from=envelope.mail_from or "",
            rcpt_tos=list(envelope.rcpt_tos),
            data=envelope.original_content or b"",
            mail_options=list(envelope.mail_options),
            rcpt_options=dict(connection.rcpt_options),
        )
        with self._lock:
            self.messages.append(message)
            connection.record.messages += 1

    def _auth_failed(self, mechanism: str, user: str | None, client_reply: bytes | None) -> None:
        with self._lock:
            self.auth_failures.append(
                {"mechanism": mechanism, "user": user, "client_reply": client_reply}
            )

    def _abort_all(self, controller: FakeController) -> None:
        # abort(), not close(): close() would keep a TLS connection until the client answers
        # our close_notify, and smtplib never does.
        async def abort_all() -> set[Connection]:
            for connection in self._live:
                if isinstance(connection.transport, asyncio.Transport):
                    connection.transport.abort()
            return set(self._live)

        aborted = asyncio.run_coroutine_threadsafe(abort_all(), controller.loop).result(5)
        with self._lock:
            self._lock.wait_for(lambda: not aborted & self._live, timeout=5)


def _check_reply(reply: str) -> None:
    if not re.fullmatch(r"[45]\d\d( .*)?", reply):
        raise ValueError(f"expected a one-line 4xx/5xx reply like '451 4.3.0 ...', not {reply!r}")


# What the `make_server` fixture returns: start a FakeSmtpServer with these options.
ServerFactory = Callable[..., FakeSmtpServer]
