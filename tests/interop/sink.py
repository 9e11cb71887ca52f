"""The final destination: an SMTP server that counts what the real servers deliver to it.

Every message is kept with its Message-ID (mailpipe makes it from the job id), so a test can
say how many copies of each job arrived. It offers no AUTH and no SMTPUTF8, as a plain
internal relay target would; it accepts every message. It offers DSN (RFC 3461) and keeps
the MAIL and RCPT parameters a server passed on, so a test can see what reached the next hop.

It is the tests' FakeSmtpServer (tests/fakes/smtp_server.py) with those options: this module
only counts.
"""

from __future__ import annotations

import collections

from tests.fakes.smtp_server import FakeSmtpServer, ReceivedMessage


class Sink:
    def __init__(self) -> None:
        self._server = FakeSmtpServer(
            tls=None,
            security="none",
            mechanisms=(),
            auth_required=False,
            smtputf8=False,
            pipelining=False,
            dsn=True,
        )
        self._cleared = 0  # messages before the latest clear()

    @property
    def port(self) -> int:
        return self._server.port

    def start(self) -> None:
        self._server.start()

    def stop(self) -> None:
        self._server.stop()

    def _received(self) -> list[ReceivedMessage]:
        return self._server.messages[self._cleared :]

    @property
    def messages(self) -> list[bytes]:
        return [m.data for m in self._received()]

    @property
    def envelopes(self) -> list[tuple[list[str], dict[str, list[str]]]]:
        """(MAIL parameters, {recipient: RCPT parameters}) of each message, upper-cased."""
        return [
            (
                [o.upper() for o in m.mail_options],
                {r: [o.upper() for o in options] for r, options in m.rcpt_options.items()},
            )
            for m in self._received()
        ]

    def copies(self) -> collections.Counter[str]:
        """How many times each Message-ID arrived."""
        ids = (m.message["Message-ID"] for m in self._received())
        return collections.Counter(str(i).strip() for i in ids)

    def count(self) -> int:
        return len(self._received())

    def clear(self) -> None:
        self._cleared = len(self._server.messages)
