"""The transport seam: an envelope and bytes in, an outcome out.

The delivery service sees only ``Transport``; SMTP (``transport.smtp``) is one
implementation, Microsoft Graph ``sendMail`` (``transport.graph``) another;
``transport.router`` picks the profile's. The caller resolves the ``Profile``
once per delivery and passes the object, never its name: every step of one send
sees one version of it, however often the profiles file is reloaded. A
transport gets the profile's credentials itself, reuses its connections, and
reports every server reply and every failure as an ``Outcome``; it never
decides whether a job is retried.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from worker.credentials import Profile, TokenSource
from worker.outgoing import OutgoingMessage
from worker.transport.outcome import Outcome

__all__ = ["OutgoingMessage", "SendResult", "Transport"]


@dataclass(frozen=True)
class SendResult:
    """An Outcome plus what the attempt record wants to know about how it was reached."""

    outcome: Outcome
    reused_connection: bool = False
    token_source: TokenSource | None = None  # None: password, or an already-open connection
    token_seconds: float | None = None
    # Every connection the mailbox allows was in use: nothing was tried.
    busy: bool = False


class Transport(Protocol):
    """Sends one message for a profile; thread-safe; one per worker process."""

    def send(self, profile: Profile, message: OutgoingMessage) -> SendResult:
        """Send and say what happened; only credential errors (ours) are raised."""
        ...

    def send_many(
        self, profile: Profile, messages: Sequence[OutgoingMessage]
    ) -> Iterator[SendResult]:
        """``send`` for each message, in order, each result as soon as it is known.

        A transport may send them faster together (SMTP pipelines them over
        one connection); the caller reads each result before the next is sent,
        and reads to the end: a run left unfinished closes its connection.
        """
        ...

    def close(self) -> None:
        """Close every open connection (worker shutdown)."""
        ...
