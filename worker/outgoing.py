"""What intake builds once and a transport sends: the envelope and the exact bytes.

Plain data below both, so that building a message (a producer's work) does
not import the transports that send it (a worker's).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class OutgoingMessage:
    """The envelope and the exact bytes to send (built once, at intake)."""

    sender: str
    recipients: tuple[str, ...]
    data: bytes = field(repr=False)
    message_id: str
    smtputf8: bool = False
    # The job id, sent as the DSN envelope id (RFC 3461 ENVID) so a bounce names its job.
    envid: str | None = None
