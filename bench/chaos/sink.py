"""The chaos run's SMTP server: accepts AUTH XOAUTH2, misbehaves on purpose, counts Message-IDs.

aiosmtpd on 127.0.0.1 without TLS (the profiles say ``security = "none"`` with
``allow_plaintext_auth``). It takes only tokens its ``token_ok`` callback
approves (the chaos token endpoint's, unexpired), and it:

- refuses RCPT TO ``nobody-…`` with ``550 5.1.1`` (the permanently bad jobs);
- answers ``451 4.3.0`` to a fraction of the other RCPTs (seeded);
- for a fraction of messages, reads the whole DATA and closes the connection
  without replying and *without keeping the message*: the client cannot know
  whether it was delivered, retries, and the sink sees one copy, not two;
- records the Message-ID, arrival time and reply time of every message it
  keeps, so duplicate deliveries can be counted and timed against crashes;
- then takes up to ``data_delay_seconds`` (uniform) to send the 250, so that
  a worker killed mid-send may have had its message accepted;
- on request (``hold_next_data``) holds the next kept message's final reply
  and says so, so the harness can kill its sender while it is in flight at
  DATA (after the data, before the 250).
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import AnyStr

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, Session

from tests.support import free_port
from worker.faces.sandbox import check_xoauth2

REFUSED_PREFIX = "nobody-"
_MESSAGE_ID = re.compile(rb"^Message-ID:[ \t]*(<[^>\r\n]+>)", re.IGNORECASE | re.MULTILINE)


@dataclass(frozen=True)
class Accepted:
    message_id: str
    at: float  # time.time() when it was kept (its data all read), before the 250
    replied_at: float  # time.time() when the 250 went out (or found its client gone)


class DataHold:
    """One message's final reply, held: ``started`` is set once a DATA is in flight."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.started = threading.Event()
        self.message_id = ""
        self._deadline = 0.0
        self._released = threading.Event()

    def release(self) -> None:
        self._released.set()

    def holding(self, margin_seconds: float = 0.2) -> bool:
        """A DATA is in flight and its reply still held (for at least the margin)."""
        return (
            self.started.is_set()
            and not self._released.is_set()
            and time.monotonic() < self._deadline - margin_seconds
        )

    async def wait(self, message_id: str) -> None:
        """In the server's loop: say a DATA is in flight, then wait for release (or time out)."""
        self.message_id = message_id
        self._deadline = time.monotonic() + self.seconds
        self.started.set()
        while not self._released.is_set() and time.monotonic() < self._deadline:
            await asyncio.sleep(0.005)


class ChaosSink:
    """An aiosmtpd server in a thread.

    ``counts`` keys: auth_ok, auth_rejected, rcpt_451, rcpt_550, dropped_after_data.
    """

    def __init__(
        self,
        token_ok: Callable[[str], bool],
        *,
        rcpt_451_fraction: float,
        drop_after_data_fraction: float,
        data_delay_seconds: float,
        seed: int,
    ) -> None:
        self.token_ok = token_ok
        self.rcpt_451_fraction = rcpt_451_fraction
        self.drop_after_data_fraction = drop_after_data_fraction
        self.data_delay_seconds = data_delay_seconds
        self.counts: Counter[str] = Counter()
        self._accepted: list[Accepted] = []
        self._hold: DataHold | None = None
        self._random = random.Random(seed)  # noqa: S311 (reproducible faults, not crypto)
        self._lock = threading.Lock()
        self._controller: _Controller | None = None
        self.port = 0

    def start(self) -> None:
        # aiosmtpd logs every command, and a deprecation notice about itself on every AUTH.
        logging.getLogger("mail.log").setLevel(logging.ERROR)
        controller = _Controller(
            _Handler(self),
            hostname="127.0.0.1",
            port=free_port(),
            ident="ESMTP mailpipe chaos sink",
            # Plaintext AUTH on loopback only; AUTH is enforced in handle_MAIL, since
            # aiosmtpd warns when auth_required is combined with auth_require_tls=False.
            auth_require_tls=False,
            auth_exclude_mechanism=["LOGIN", "PLAIN"],
        )
        controller.start()
        self.port = int(controller.port)
        self._controller = controller

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def hold_next_data(self, seconds: float) -> DataHold:
        """Hold the final reply of the next message kept, up to ``seconds`` or its release."""
        hold = DataHold(seconds)
        with self._lock:
            self._hold = hold
        return hold

    def cancel_hold(self, hold: DataHold) -> None:
        with self._lock:
            if self._hold is hold:
                self._hold = None
        hold.release()

    def deliveries(self) -> list[Accepted]:
        """Every message kept (and answered 250, if the client was still there), in order."""
        with self._lock:
            return list(self._accepted)

    # -- the dice, thrown in the server thread -------------------------------------------

    def _roll(self, fraction: float) -> bool:
        with self._lock:
            return self._random.random() < fraction

    def _data_delay(self) -> float:
        with self._lock:
            return self._random.uniform(0, self.data_delay_seconds)

    def _count(self, what: str) -> None:
        with self._lock:
            self.counts[what] += 1

    def _take_hold(self) -> DataHold | None:
        with self._lock:
            hold, self._hold = self._hold, None
            return hold

    def _accept(self, message_id: str, at: float) -> None:
        with self._lock:
            self._accepted.append(Accepted(message_id, at, time.time()))


def message_id_of(data: bytes) -> str:
    headers = data.split(b"\r\n\r\n", 1)[0]
    found = _MESSAGE_ID.search(headers)
    return found.group(1).decode(errors="replace") if found else "(no Message-ID)"


class _Session(SMTP):
    """aiosmtpd's protocol, silent once we dropped the connection on purpose."""

    async def push(self, status: AnyStr) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        await super().push(status)


class _Controller(Controller):
    def factory(self) -> _Session:
        return _Session(self.handler, **self.SMTP_kwargs)


class _Handler:
    def __init__(self, sink: ChaosSink) -> None:
        self.sink = sink

    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:
        result = await check_xoauth2(server, args, lambda _user, token: self.sink.token_ok(token))
        if result.success:
            self.sink._count("auth_ok")
        elif result.message:  # refused, not an exchange the client broke off
            self.sink._count("auth_rejected")
        return result

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address.lower().startswith(REFUSED_PREFIX):
            self.sink._count("rcpt_550")
            return "550 5.1.1 Recipient address rejected: user unknown"
        if self.sink._roll(self.sink.rcpt_451_fraction):
            self.sink._count("rcpt_451")
            return "451 4.3.0 Temporary failure, try again later"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.sink._roll(self.sink.drop_after_data_fraction):
            self.sink._count("dropped_after_data")
            if isinstance(server.transport, asyncio.Transport):
                server.transport.abort()  # no reply: _Session.push stays silent
            return "451 4.3.0 (never sent: the connection is gone)"
        kept, message_id = time.time(), message_id_of(envelope.original_content or b"")
        # The message is queued; the reply takes a while. A worker killed meanwhile
        # never reads the 250: the crash window, made wide enough to hit.
        # Kept even when the client goes away meanwhile (aiosmtpd then cancels this).
        hold = self.sink._take_hold()
        try:
            if hold is not None:
                await hold.wait(message_id)
            else:
                await asyncio.sleep(self.sink._data_delay())
        finally:
            self.sink._accept(message_id, kept)
        return "250 2.0.0 OK queued"
