"""``mailpipe relay``: an SMTP server (aiosmtpd) whose accepted messages become jobs.

Password-only tools (Alertmanager's and Grafana's email settings, cron,
appliances) keep their SMTP settings; mailpipe sends their mail with the
profile's OAuth credentials. AUTH (PLAIN, LOGIN) is offered only after
STARTTLS (or on the implicit-TLS port), unless the operator allows plain
text on loopback. ``250`` is answered only after the job is stored: a storage
failure answers ``451`` so the client keeps the message and tries again.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl
import threading
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from worker.credentials import is_loopback
from worker.errors import ConfigError, MailpipeError, UnavailableError
from worker.faces.relay.auth import Logins
from worker.faces.relay.config import RelayUsers
from worker.intake.message import InvalidMessageError
from worker.intake.raw import submit_raw
from worker.queue import Producer, build_producer

log = logging.getLogger("mailpipe.relay")


class RelayHandler:
    """aiosmtpd hooks: who may send from and to where, and the message into a job."""

    def __init__(self, runtime: Producer, users: RelayUsers, logins: Logins) -> None:
        self.runtime = runtime
        self.users = users
        self.logins = logins

    async def auth_PLAIN(self, server: SMTP, args: list[str]) -> Any:
        return await self.logins.plain(server, args)

    async def auth_LOGIN(self, server: SMTP, args: list[str]) -> Any:
        return await self.logins.login(server, args)

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        user = self.users.get(session.auth_data)
        if user is None:
            return "530 5.7.0 Authentication required"
        if not user.may_send_as(address):
            return f"553 5.7.1 {user.name} may not send as <{address}>"
        envelope.mail_from, envelope.mail_options = address, list(options)
        return "250 2.1.0 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        user = self.users.get(session.auth_data)
        if user is None:
            return "530 5.7.0 Authentication required"
        if not user.may_send_to(address):
            return f"550 5.7.1 {user.name} may not send to <{address}>"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        user = self.users.get(session.auth_data)
        if user is None:
            return "530 5.7.0 Authentication required"
        data = envelope.original_content or b""
        loop = asyncio.get_running_loop()
        try:
            job_id = await loop.run_in_executor(
                None,
                lambda: submit_raw(
                    self.runtime, user.profile, envelope.rcpt_tos, data,
                    priority=user.priority, may_show_as=user.may_show_as,
                    submitted_by=f"relay user {user.name}",
                ),
            )  # fmt: skip
        except InvalidMessageError as exc:
            return f"554 5.6.0 {_line(exc)}"
        except UnavailableError as exc:
            log.warning("relay: message from %s not stored: %s", user.name, exc)
            return "451 4.3.0 Could not store the message now; try again later"
        except MailpipeError as exc:
            log.error("relay: message from %s refused: %s", user.name, exc)
            return f"451 4.3.5 {_line(exc)}"
        log.info(
            "relay: %s queued job %s for %d recipient(s)", user.name, job_id, len(envelope.rcpt_tos)
        )
        return f"250 2.0.0 OK queued as {job_id}"


class _RelaySMTP(SMTP):
    """aiosmtpd's SMTP, remembering its live sessions so shutdown can say 421 to each."""

    live: set[_RelaySMTP]

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self.live.add(self)

    def connection_lost(self, error: Exception | None) -> None:
        self.live.discard(self)
        super().connection_lost(error)


class _Controller(Controller):
    """aiosmtpd's threaded controller, making our SMTP class, with a goodbye before stop."""

    def __init__(self, handler: RelayHandler, live: set[_RelaySMTP], **options: Any) -> None:
        self._live = live
        super().__init__(handler, **options)

    def factory(self) -> SMTP:
        server = _RelaySMTP(self.handler, **self.SMTP_kwargs)
        server.live = self._live
        return server

    def stop(self, *args: Any, **kwargs: Any) -> None:
        super().stop(*args, **kwargs)
        self.handler.logins.close()

    def say_goodbye(self) -> None:
        """421 to every session still open (RFC 5321 §3.8), then close them."""

        async def goodbye() -> None:
            for server in list(self._live):
                transport = server.transport
                if transport is None or transport.is_closing():
                    continue
                try:
                    await server.push("421 4.3.2 mailpipe relay is shutting down; try again")
                except Exception:  # noqa: S110 (that client left as we said goodbye)
                    pass
                finally:
                    transport.close()
            # Let the TLS layers close their sockets before the loop stops; a
            # client that does not answer TLS's close_notify is cut off after 1 s.
            for _ in range(100):
                if not self._live:
                    return
                await asyncio.sleep(0.01)
            for server in list(self._live):
                for layer in (server.transport, server._original_transport):
                    if isinstance(layer, asyncio.WriteTransport):
                        layer.abort()
            await asyncio.sleep(0.05)

        if self._live and self.loop.is_running():
            asyncio.run_coroutine_threadsafe(goodbye(), self.loop).result(timeout=5)


def run_relay(host: str, port: int) -> None:
    """Serve until SIGTERM or SIGINT; then 421 to open sessions, and stop."""
    runtime = build_producer()
    try:
        controllers = relay_controllers(runtime, host, port)
        for controller in controllers:
            controller.start()
        where = ", ".join(f"{c.hostname}:{c.port}" for c in controllers)
        print(f"mailpipe: relay listening on {where}", flush=True)
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        stop.wait()
        for controller in controllers:
            controller.say_goodbye()
            controller.stop()
    finally:
        runtime.close()


def relay_controllers(runtime: Producer, host: str, port: int) -> list[_Controller]:
    """The relay's listeners: STARTTLS (or loopback plain text) on ``port``, implicit TLS too."""
    settings = runtime.settings
    users = RelayUsers(runtime)
    if not len(users):
        raise ConfigError(
            f"{runtime.profiles_file.path}: no [relay.users.NAME] to log in as "
            "(password_hash from `mailpipe relay hash-password`)"
        )
    tls = _tls_context(settings.relay_tls_cert_file, settings.relay_tls_key_file)
    if tls is None and not (settings.relay_allow_plaintext_loopback and is_loopback(host)):
        raise ConfigError(
            "the relay needs MAILPIPE_RELAY_TLS_CERT_FILE and MAILPIPE_RELAY_TLS_KEY_FILE: "
            "passwords must not cross the network unencrypted (plain text only on loopback, "
            "with MAILPIPE_RELAY_ALLOW_PLAINTEXT_LOOPBACK=true)"
        )
    logins = Logins(
        users,
        lockout_failures=settings.relay_lockout_failures,
        lockout_seconds=settings.relay_lockout_seconds,
    )
    handler = RelayHandler(runtime, users, logins)
    live: set[_RelaySMTP] = set()
    common: dict[str, Any] = {
        "data_size_limit": settings.relay_max_message_bytes,
        "enable_SMTPUTF8": True,
        "decode_data": False,
        "auth_required": True,
        "ready_timeout": 10.0,
        # "220 <host> ESMTP": no library name or version for a scanner to match.
        "ident": "ESMTP",
    }
    controllers = [
        _Controller(
            handler, live, hostname=host, port=port, tls_context=tls,
            require_starttls=tls is not None, auth_require_tls=tls is not None, **common,
        )
    ]  # fmt: skip
    if tls is not None and settings.relay_tls_port:
        controllers.append(
            _Controller(
                handler, live, hostname=host, port=settings.relay_tls_port, ssl_context=tls,
                auth_require_tls=False, **common,  # the connection is TLS from the start
            )
        )  # fmt: skip
    return controllers


def _tls_context(cert_file: Path | None, key_file: Path | None) -> ssl.SSLContext | None:
    if cert_file is None and key_file is None:
        return None
    if cert_file is None or key_file is None:
        raise ConfigError("give both MAILPIPE_RELAY_TLS_CERT_FILE and MAILPIPE_RELAY_TLS_KEY_FILE")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(str(cert_file), str(key_file))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"the relay's certificate or key cannot be used ({type(exc).__name__}: {exc})"
        ) from None
    return context


def _line(exc: Exception) -> str:
    return " ".join(str(exc).split())[:400]
