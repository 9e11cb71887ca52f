"""The final destination: an SMTP server that counts what the real servers deliver to it.

Every message is kept with its Message-ID (mailpipe makes it from the job id), so a test can
say how many copies of each job arrived. It offers no AUTH and no SMTPUTF8, as a plain
internal relay target would; it accepts every message.
"""

from __future__ import annotations

import collections
import email
import email.policy
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.support import free_port


class Sink:
    def __init__(self) -> None:
        self.port = free_port()
        self.messages: list[bytes] = []
        self._lock = threading.Lock()
        self._controller = Controller(
            self, hostname="127.0.0.1", port=self.port, server_hostname="sink.interop.test"
        )

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self._lock:
            self.messages.append(envelope.original_content or b"")
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
