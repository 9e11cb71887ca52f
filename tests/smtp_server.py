"""A real SMTP server on 127.0.0.1 for the tests, scripted per test.

aiosmtpd runs in a thread. The server checks OAuth bearer tokens (XOAUTH2, OAUTHBEARER) and
passwords (PLAIN, LOGIN), answers failures the way Gmail does, records every session and
message, and can be told to refuse, to drop the connection after DATA, or to close every
connection as an idle timeout would.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import email
import email.policy
import json
import logging
import re
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from types import TracebackType
from typing import Any, AnyStr

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import (
    MISSING,
    SMTP,
    AuthResult,
    Envelope,
    LoginPassword,
    Session,
    TLSSetupException,
)

from worker.transport.smtp.sasl import parse_xoauth2

__all__ = ["FakeSmtpServer", "ReceivedMessage", "SessionRecord", "TlsFiles", "make_tls"]

log = logging.getLogger(__name__)


class _DropLoginDataNotice(logging.Filter):
    """aiosmtpd 1.4 logs a deprecation notice for its own login_data on every AUTH."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "login_data is deprecated" not in record.getMessage()


logging.getLogger("mail.log").addFilter(_DropLoginDataNotice())

# Microsoft access tokens are ~2 KB and grow by a third in base64: allow 8 KB command lines.
COMMAND_LIMIT = 8192
MECHANISMS = ("XOAUTH2", "OAUTHBEARER", "PLAIN", "LOGIN")
PHASES = ("mail", "rcpt", "data", "auth")
SCOPE = "https://mail.google.com/"
GMAIL_REJECTED = (
    "535 5.7.8 Username and Password not accepted. For more information,"
    " go to https://support.google.com/mail/?p=BadCredentials"
)
# gs2 header "n,a=<user>," (or "n,,"), then ^A-separated key=value pairs, then ^A^A.
OAUTHBEARER_RESPONSE = re.compile(r"[ny],(?:a=([^,\x01]*))?,\x01(.*)\x01\x01", re.DOTALL)


@dataclass(frozen=True)
class TlsFiles:
    ca_pem: Path  # the test CA certificate a client trusts (ca_file)
    server_context: ssl.SSLContext  # server side, with a certificate for the identities


def make_tls(directory: Path, identities: tuple[str, ...] = ("127.0.0.1", "localhost")) -> TlsFiles:
    """A fresh test CA (written to directory/ca.pem) and a server context it vouches for."""
    ca = trustme.CA()
    ca_pem = directory / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_pem))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*identities).configure_cert(context)
    return TlsFiles(ca_pem=ca_pem, server_context=context)


@dataclass
class ReceivedMessage:
    session: int  # index into FakeSmtpServer.sessions
    mail_from: str
    rcpt_tos: list[str]  # only the accepted recipients
    data: bytes  # raw message bytes as received (dot-unstuffed)
    mail_options: list[str]  # e.g. ["SIZE=312", "SMTPUTF8", "BODY=8BITMIME"]

    @property
    def message(self) -> EmailMessage:
        parsed = email.message_from_bytes(self.data, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class SessionRecord:
    peer: tuple[Any, ...]
    tls: bool = False  # STARTTLS done, or implicit TLS
    ehlo: str | None = None
    auth_mechanism: str | None = None  # of the latest AUTH command
    auth_user: str | None = None  # user= (XOAUTH2), a= (OAUTHBEARER), login (PLAIN/LOGIN)
    authenticated: bool = False
    initial_response: bool | None = None  # True if the SASL response came on the AUTH line
    messages: int = 0
    closed: bool = False


class FakeSmtpServer:
    def __init__(
        self,
        *,
        tls: TlsFiles | None,
        security: str = "starttls",  # "starttls" | "tls" (implicit) | "none"
        token_ok: Callable[[str, str], bool] = lambda user, token: False,
        passwords: dict[str, str] | None = None,
        mechanisms: tuple[str, ...] = MECHANISMS,
        auth_required: bool = True,
        smtputf8: bool = True,
        gmail_style_failure: bool = True,
        max_initial_response: int | None = None,
        pipelining: bool = True,
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
        self._live: set[_Connection] = set()
        self._probe_peer: tuple[Any, ...] | None = None
        self._controller: _Controller | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        if self._controller is not None:
            raise RuntimeError("FakeSmtpServer is already running")
        handler = _Handler(self)
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
        controller = _Controller(
            self,
            handler,
            hostname=self.host,
            port=self.port,
            server_hostname="smtp.fake.test",
            ident="ESMTP fake server for mailpipe tests",
            enable_SMTPUTF8=self.smtputf8,
            # Enforced by _Connection.check_auth_needed: aiosmtpd's own flag warns when
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

    def _opened(self, connection: _Connection) -> None:
        with self._lock:
            self._live.add(connection)
            if connection.record.peer != self._probe_peer:
                connection.index = len(self.sessions)
                self.sessions.append(connection.record)

    def _closed(self, connection: _Connection) -> None:
        with self._lock:
            connection.record.closed = True
            self._live.discard(connection)
            self._lock.notify_all()

    def _deliver(self, connection: _Connection, envelope: Envelope) -> None:
        message = ReceivedMessage(
            session=connection.index,
            mail_from=envelope.mail_from or "",
            rcpt_tos=list(envelope.rcpt_tos),
            data=envelope.original_content or b"",
            mail_options=list(envelope.mail_options),
        )
        with self._lock:
            self.messages.append(message)
            connection.record.messages += 1

    def _auth_failed(self, mechanism: str, user: str | None, client_reply: bytes | None) -> None:
        with self._lock:
            self.auth_failures.append(
                {"mechanism": mechanism, "user": user, "client_reply": client_reply}
            )

    def _abort_all(self, controller: _Controller) -> None:
        # abort(), not close(): close() would keep a TLS connection until the client answers
        # our close_notify, and smtplib never does.
        async def abort_all() -> set[_Connection]:
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


class _Connection(SMTP):
    """aiosmtpd's protocol for one client connection, plus its SessionRecord."""

    # aiosmtpd sizes its StreamReader by line_length_limit and caps commands at 512 bytes;
    # both must admit COMMAND_LIMIT (+ CRLF). DATA lines keep RFC 5321's limit (see __init__).
    command_size_limit = COMMAND_LIMIT
    line_length_limit = COMMAND_LIMIT + 2

    def __init__(self, handler: _Handler, fake: FakeSmtpServer, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.fake = fake
        self.record = SessionRecord(peer=())
        self.index = -1  # position in fake.sessions; stays -1 for Controller's start-up probe
        self.line_length_limit = SMTP.line_length_limit
        # The class-level mapping falls back to SMTP.command_size_limit (512): use our own.
        self.command_size_limits = collections.defaultdict(lambda: COMMAND_LIMIT)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Called again with the TLS transport after STARTTLS: same connection, same record.
        super().connection_made(transport)
        self.record.tls = transport.get_extra_info("ssl_object") is not None
        if not self.record.peer:
            self.record.peer = tuple(transport.get_extra_info("peername"))
            self.fake._opened(self)

    def connection_lost(self, error: Exception | None) -> None:
        # aiosmtpd itself calls this a second time after a failed STARTTLS handshake.
        super().connection_lost(error)
        self.fake._closed(self)

    async def push(self, status: AnyStr) -> None:
        if self.transport is None or self.transport.is_closing():
            return  # we dropped the connection on purpose: the client gets no reply
        await super().push(status)
        text = status if isinstance(status, str) else status.decode(errors="replace")
        if text.startswith("421 "):
            self.transport.close()  # RFC 5321 4.2.2: 421 means the server closes the channel

    async def check_auth_needed(self, caller_method: str) -> bool:
        assert self.session is not None
        if self.fake.auth_required and not self.session.authenticated:
            await self.push("530 5.7.0 Authentication required")
            return True
        return False


class _Controller(Controller):
    """aiosmtpd's threaded Controller, making _Connection and marking its own probe."""

    def __init__(self, fake: FakeSmtpServer, handler: _Handler, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.fake = fake

    def factory(self) -> _Connection:
        return _Connection(self.handler, self.fake, **self.SMTP_kwargs)

    def _trigger_server(self) -> None:
        # start() connects once to see the server answer. Replace that probe with one whose
        # source port is known before it connects, so it is not recorded as a client session.
        assert isinstance(self.server, asyncio.Server)
        self.port = self.server.sockets[0].getsockname()[1]  # port=0 picked a free one
        with socket.socket() as sock:
            sock.settimeout(self.ready_timeout)
            sock.bind((self.hostname, 0))
            self.fake._probe_peer = tuple(sock.getsockname())
            sock.connect((self.hostname, self.port))
            if self.ssl_context is None:
                sock.recv(1024)
                return
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE  # only checking that the server answers
            with context.wrap_socket(sock) as tls_sock:
                tls_sock.recv(1024)


class _Handler:
    """aiosmtpd hooks (handle_*) and bearer-token mechanisms (auth_*) shared by connections."""

    def __init__(self, fake: FakeSmtpServer) -> None:
        self.fake = fake

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str, reply: list[str]
    ) -> list[str]:
        session.host_name = hostname  # with this hook, aiosmtpd leaves that to us
        _connection(server).record.ehlo = hostname
        if self.fake.pipelining:
            # aiosmtpd reads commands as a stream, so pipelined ones already work;
            # it only leaves the keyword out (Exchange Online and Gmail send it).
            reply.insert(1, "250-PIPELINING")
        return reply

    async def handle_AUTH(
        self, server: SMTP, session: Session, envelope: Envelope, args: list[str]
    ) -> object:
        record = _connection(server).record
        record.auth_mechanism = args[0].upper()
        record.initial_response = len(args) > 1
        limit = self.fake.max_initial_response
        if limit is not None and len(("AUTH " + " ".join(args)).encode()) > limit:
            return "500 5.5.6 Line too long"  # as Dovecot answers a long initial response
        return self.fake._take("auth") or MISSING  # MISSING: go on to the auth_* mechanism

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if reply := self.fake._take("mail"):
            return reply
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        self.fake.rcpt_commands += 1
        if self.fake.rcpt_delay_seconds:
            # A slow server: lets a test kill a client in the middle of a transaction.
            await asyncio.sleep(self.fake.rcpt_delay_seconds)
        if reply := self.fake._take("rcpt") or self.fake._refusal(address):
            return reply
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if reply := self.fake._take("data"):
            return reply
        connection = _connection(server)
        self.fake._deliver(connection, envelope)
        if self.fake._take_drop() and isinstance(connection.transport, asyncio.Transport):
            connection.transport.abort()  # see _abort_all; push() now sends no reply to DATA
        return "250 2.0.0 OK queued"

    async def handle_exception(self, error: Exception) -> str:
        # aiosmtpd logs a traceback for a client that refuses our certificate: tests do that
        # on purpose. Anything else is a bug here or in a token_ok callback: keep it loud.
        if not isinstance(error, TLSSetupException):
            log.error("fake SMTP server error", exc_info=error)
        return f"500 Error: ({type(error).__name__}) {error}"

    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:
        return await self._bearer(server, args, "XOAUTH2")

    async def auth_OAUTHBEARER(self, server: SMTP, args: list[str]) -> AuthResult:
        return await self._bearer(server, args, "OAUTHBEARER")

    async def _bearer(self, server: SMTP, args: list[str], mechanism: str) -> AuthResult:
        record = _connection(server).record
        response = await _sasl_response(server, args)
        if response is None:
            return AuthResult(success=False, handled=True)  # already answered 501
        parse = parse_xoauth2 if mechanism == "XOAUTH2" else _parse_oauthbearer
        parsed = parse(response)
        if parsed is None:
            self.fake._auth_failed(mechanism, None, None)
            return AuthResult(
                success=False, handled=False, message=f"501 5.5.2 Malformed {mechanism} response"
            )
        user, token = parsed
        record.auth_user = user
        if self.fake.token_ok(user, token):
            record.authenticated = True
            return AuthResult(success=True, auth_data=user, message="235 2.7.0 Accepted")
        if mechanism == "XOAUTH2" and not self.fake.gmail_style_failure:
            self.fake._auth_failed(mechanism, user, None)
            return AuthResult(
                success=False, handled=False, message="535 5.7.3 Authentication unsuccessful"
            )
        # Gmail (XOAUTH2) and RFC 7628 (OAUTHBEARER): an error JSON in a 334 challenge, which
        # the client must answer (empty line / "\x01") before it gets the 535.
        status = "401" if mechanism == "XOAUTH2" else "invalid_token"
        error = {"status": status, "schemes": "bearer", "scope": SCOPE}
        reply = await server.challenge_auth(json.dumps(error, separators=(",", ":")))
        client_reply = reply if isinstance(reply, bytes) else None
        self.fake._auth_failed(mechanism, user, client_reply)
        if client_reply is None:
            return AuthResult(success=False, handled=True)  # "*" or bad base64: answered 501
        final = GMAIL_REJECTED if mechanism == "XOAUTH2" else None  # None: aiosmtpd's 535 5.7.8
        return AuthResult(success=False, handled=False, message=final)

    def check_password(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        """aiosmtpd's authenticator for its built-in PLAIN and LOGIN."""
        assert isinstance(data, LoginPassword)
        record = _connection(server).record
        user = data.login.decode(errors="replace")
        record.auth_user = user
        expected = self.fake.passwords.get(user)
        if expected is not None and data.password == expected.encode():
            record.authenticated = True
            return AuthResult(success=True, auth_data=data)
        self.fake._auth_failed(mechanism, user, None)
        return AuthResult(success=False, handled=False)  # aiosmtpd: 535 5.7.8 ...


def _connection(server: SMTP) -> _Connection:
    assert isinstance(server, _Connection)
    return server


async def _sasl_response(server: SMTP, args: list[str]) -> bytes | None:
    """The SASL response from the AUTH line, or else the answer to an empty 334 challenge."""
    if len(args) == 1:
        reply = await server.challenge_auth("")
        return reply if isinstance(reply, bytes) else None
    if args[1] == "=":  # RFC 4954: an empty initial response
        return b""
    try:
        return base64.b64decode(args[1], validate=True)
    except binascii.Error:
        await server.push("501 5.5.2 Can't decode base64")
        return None


def _parse_oauthbearer(response: bytes) -> tuple[str, str] | None:
    """RFC 7628: n,a=<user>,^Ahost=..^Aport=..^Aauth=Bearer <t>^A^A -> (user, token)."""
    match = OAUTHBEARER_RESPONSE.fullmatch(response.decode(errors="replace"))
    if match is None:
        return None
    pairs = {key: value for key, _, value in (kv.partition("=") for kv in match[2].split("\x01"))}
    auth = pairs.get("auth", "")
    if not auth.startswith("Bearer "):
        return None
    # RFC 5801 saslname: "," and "=" in the user name arrive as "=2C" and "=3D".
    user = re.sub("=2C|=3D", lambda m: "," if m[0] == "=2C" else "=", match[1] or "")
    return user, auth.removeprefix("Bearer ")


# What the `make_server` fixture returns: start a FakeSmtpServer with these options.
ServerFactory = Callable[..., FakeSmtpServer]
