"""What happened to one send: delivered, transient, auth rejected or permanent.

``outcome()`` is the one place an ``Outcome`` is made: from a server's reply
(already classified by the transport that received it, e.g.
``transport.smtp.replies.smtp_reply`` or ``transport.graph.replies``) or from
one of our errors; ``outcome_from_json`` reads back one that ``outcome_json``
kept. ``delivery.decide`` alone decides what an outcome means for the job
(docs/architecture.md).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from worker.errors import MailpipeError

# The kinds of outcome, and so of the attempts table's ``outcome`` column.
OutcomeKind = Literal["delivered", "transient", "auth_rejected", "permanent"]
Phase = Literal["token", "connect", "tls", "ehlo", "auth", "mail", "rcpt", "data"]


@dataclass(frozen=True)
class Reply:
    """A server's answer, classified by the transport that received it."""

    kind: OutcomeKind
    code: int | None
    text: str
    enhanced_code: str | None = None
    hint: str | None = None
    queue_id: str | None = None
    # From an HTTP Retry-After (Graph's 429/503): the earliest sensible retry.
    retry_after_seconds: float | None = None


@dataclass(frozen=True)
class RecipientResult:
    address: str
    accepted: bool
    code: int | None = None
    enhanced_code: str | None = None
    text: str = ""
    kind: OutcomeKind = "delivered"


@dataclass(frozen=True)
class Outcome:
    """One send's result, with everything the attempt record keeps."""

    kind: OutcomeKind
    phase: Phase
    code: int | None = None
    enhanced_code: str | None = None
    text: str = ""
    hint: str | None = None
    queue_id: str | None = None
    recipients: tuple[RecipientResult, ...] = field(default_factory=tuple)
    # From a token endpoint's Retry-After: the earliest sensible retry.
    retry_after_seconds: float | None = None

    def summary(self, *, with_hint: bool = True) -> str:
        """One line: kind, phase, the server's reply (its text starts with the enhanced code)."""
        reply = " ".join(str(p) for p in (self.code, self.text) if p)
        what = f"{self.kind} at {self.phase}" + (f": {reply}" if reply else "")
        return what + (f" — {self.hint}" if self.hint and with_hint else "")


def outcome(
    phase: Phase,
    source: Reply | MailpipeError,
    *,
    recipients: tuple[RecipientResult, ...] = (),
) -> Outcome:
    """The Outcome of ``phase``, from the server's reply or from the error that ended it."""
    if isinstance(source, Reply):
        return Outcome(
            kind=source.kind,
            phase=phase,
            code=source.code,
            enhanced_code=source.enhanced_code,
            text=source.text,
            hint=source.hint,
            queue_id=source.queue_id,
            recipients=recipients,
            retry_after_seconds=source.retry_after_seconds,
        )
    return Outcome(
        kind=source.kind,
        phase=phase,
        text=source.message,
        hint=source.hint,
        recipients=recipients,
        retry_after_seconds=source.retry_after_seconds,
    )


def outcome_json(kept: Outcome) -> str:
    """``kept`` as JSON, for ``outcome_from_json`` to read back (e.g. a send mark in Redis)."""
    return json.dumps(asdict(kept))


def outcome_from_json(text: str | bytes) -> Outcome:
    """The Outcome that ``outcome_json`` wrote."""
    data: dict[str, Any] = json.loads(text)
    recipients = tuple(RecipientResult(**r) for r in data.pop("recipients"))
    return Outcome(**data, recipients=recipients)
