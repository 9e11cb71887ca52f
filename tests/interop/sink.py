"""The final destination: an SMTP server that counts what the real servers deliver to it.

Every message is kept with its Message-ID (mailpipe makes it from the job id), so a test can
say how many copies of each job arrived. It offers no AUTH and no SMTPUTF8, as a plain
internal relay target would; it accepts every message. It offers DSN (RFC 3461) and keeps
the MAIL and RCPT parameters a server passed on, so a test can see what reached the next hop.
"""

from __future__ import annotations

import collections
import email
import email.policy
import threading
from collections.abc import Sequence
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.support import free_port


class DsnSmtp(SMTP):
    """aiosmtpd with RFC 3461's parameters accepted (it refuses every one it does not know)."""

    def _getparams(self, params: Sequence[str]) -> dict[str, str | bool] | None:
        found = super()._getparams(params)
        dsn = ("RET", "ENVID", "NOTIFY", "ORCPT")
        return None if found is None else {k: v for k, v in found.items() if k not in dsn}


class DsnController(Controller):
    def factory(self) -> SMTP:
        return DsnSmtp(self.handler, **self.SMTP_kwargs)


class Sink:
    def __init__(self) -> None:
        self.port = free_port()
        self.messages: list[bytes] = []
        # (MAIL parameters, {recipient: RCPT parameters}) of each message, upper-cased.
        self.envelopes: list[tuple[list[str], dict[str, list[str]]]] = []
        self._lock = threading.Lock()
        self._controller = DsnController(
            self, hostname="127.0.0.1", port=self.port, server_hostname="sink.interop.test"
        )

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str, reply: list[str]
    ) -> list[str]:
        session.host_name = hostname
        reply.insert(1, "250-DSN")
        return reply

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        envelope.rcpt_tos.append(address)
        rcpt: Any = envelope.rcpt_options
        rcpt.append((address, list(options)))
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        rcpt: list[Any] = list(envelope.rcpt_options)
        with self._lock:
            self.messages.append(envelope.original_content or b"")
            self.envelopes.append((list(envelope.mail_options), dict(rcpt)))
        return "250 OK"

    def copies(self) -> collections.Counter[str]:
        """How many times each Message-ID arrived."""
        with self._lock:
            raw = list(self.messages)
        ids = (email.message_from_bytes(m, policy=email.policy.default)["Message-ID"] for m in raw)
        return collections.Counter(str(i).strip() for i in ids)

    def count(self) -> int:
        with self._lock:
            return len(self.messages)

    def clear(self) -> None:
        with self._lock:
            self.messages.clear()
            self.envelopes.clear()
