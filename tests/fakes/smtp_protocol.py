"""The fake SMTP server's aiosmtpd parts: one Connection per client, its Controller, the hooks.

FakeSmtpServer (tests/fakes/smtp_server.py) owns the script and the records; these parts run in the
server thread and consult it for every command.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import socket
import ssl
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, AnyStr

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import (
    MISSING,
    SMTP,
    AuthResult,
    Envelope,
    Session,
    TLSSetupException,
)

from tests.fakes.smtp_auth import verify_bearer, verify_password
from tests.fakes.smtp_records import SessionRecord

if TYPE_CHECKING:
    from tests.fakes.smtp_server import FakeSmtpServer

__all__ = ["COMMAND_LIMIT", "Connection", "FakeController", "Handler", "connection_of"]

# The fake server's one logger, under the name of its public module.
log = logging.getLogger("tests.fakes.smtp_server")

# Microsoft access tokens are ~2 KB and grow by a third in base64: allow 8 KB command lines.
COMMAND_LIMIT = 8192


class Connection(SMTP):
    """aiosmtpd's protocol for one client connection, plus its SessionRecord."""

    # aiosmtpd sizes its StreamReader by line_length_limit and caps commands at 512 bytes;
    # both must admit COMMAND_LIMIT (+ CRLF). DATA lines keep RFC 5321's limit (see __init__).
    command_size_limit = COMMAND_LIMIT
    line_length_limit = COMMAND_LIMIT + 2

    def __init__(self, handler: Handler, fake: FakeSmtpServer, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.fake = fake
        self.record = SessionRecord(peer=())
        self.index = -1  # position in fake.sessions; stays -1 for Controller's start-up probe
        # The current transaction's RCPT parameters, by address (aiosmtpd keeps one flat list).
        self.rcpt_options: dict[str, list[str]] = {}
        self.command_arg = ""
        self.line_length_limit = SMTP.line_length_limit
        # The class-level mapping falls back to SMTP.command_size_limit (512): use our own.
        self.command_size_limits = collections.defaultdict(lambda: COMMAND_LIMIT)

    # RFC 3461's parameters, accepted when the server offers DSN (aiosmtpd knows none).
    DSN_PARAMETERS = frozenset({"RET", "ENVID", "NOTIFY", "ORCPT"})

    def _getparams(self, params: Sequence[str]) -> dict[str, str | bool] | None:
        found = super()._getparams(params)
        if found is None or not self.fake.dsn:
            return found
        return {k: v for k, v in found.items() if k not in self.DSN_PARAMETERS}

    async def smtp_MAIL(self, arg: str) -> None:
        self.command_arg = arg  # aiosmtpd gives the hooks the parameters upper-cased
        await super().smtp_MAIL(arg)

    async def smtp_RCPT(self, arg: str) -> None:
        self.command_arg = arg
        await super().smtp_RCPT(arg)

    def parameters(self) -> list[str]:
        """The current MAIL or RCPT command's parameters as the client wrote them."""
        return self.command_arg.rpartition(">")[2].split()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Called again with the TLS transport after STARTTLS: same connection, same record.
        super().connection_made(transport)
        self.record.tls = transport.get_extra_info("ssl_object") is not None
        if not self.record.peer:
            self.record.peer = tuple(transport.get_extra_info("peername"))
            self.fake._opened(self)

    async def smtp_QUIT(self, arg: str) -> None:
        self.record.quit = True
        await super().smtp_QUIT(arg)

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


class FakeController(Controller):
    """aiosmtpd's threaded Controller, making Connection and marking its own probe."""

    def __init__(self, fake: FakeSmtpServer, handler: Handler, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.fake = fake

    def factory(self) -> Connection:
        return Connection(self.handler, self.fake, **self.SMTP_kwargs)

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


class Handler:
    """aiosmtpd hooks (handle_*) and bearer-token mechanisms (auth_*) shared by connections."""

    def __init__(self, fake: FakeSmtpServer) -> None:
        self.fake = fake

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str, reply: list[str]
    ) -> list[str]:
        session.host_name = hostname  # with this hook, aiosmtpd leaves that to us
        connection_of(server).record.ehlo = hostname
        if self.fake.pipelining:
            # aiosmtpd reads commands as a stream, so pipelined ones already work;
            # it only leaves the keyword out (Exchange Online and Gmail send it).
            reply.insert(1, "250-PIPELINING")
        if self.fake.dsn:
            reply.insert(1, "250-DSN")
        if not self.fake.mechanisms:
            # No mechanism: no AUTH line (aiosmtpd would offer an empty one), as a relay target.
            reply = [line for line in reply if not line.startswith("250-AUTH")]
        return reply

    async def handle_AUTH(
        self, server: SMTP, session: Session, envelope: Envelope, args: list[str]
    ) -> object:
        record = connection_of(server).record
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
        connection = connection_of(server)
        envelope.mail_options.extend(connection.parameters())
        connection.rcpt_options = {}
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
        connection_of(server).rcpt_options[address] = connection_of(server).parameters()
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if reply := self.fake._take("data"):
            return reply
        connection = connection_of(server)
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
        record = connection_of(server).record
        return await verify_bearer(self.fake, record, server, args, "XOAUTH2")

    async def auth_OAUTHBEARER(self, server: SMTP, args: list[str]) -> AuthResult:
        record = connection_of(server).record
        return await verify_bearer(self.fake, record, server, args, "OAUTHBEARER")

    def check_password(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        """aiosmtpd's authenticator for its built-in PLAIN and LOGIN."""
        return verify_password(self.fake, connection_of(server).record, mechanism, data)


def connection_of(server: SMTP) -> Connection:
    assert isinstance(server, Connection)
    return server
