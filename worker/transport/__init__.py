"""Transport: how a built message reaches the provider (SMTP, or Microsoft Graph sendMail)."""

from worker.transport.base import OutgoingMessage, SendResult, Transport
from worker.transport.errors import ConnectionDropped, ConnectionsBusy, SessionError
from worker.transport.outcome import (
    Outcome,
    OutcomeKind,
    Phase,
    RecipientResult,
    Reply,
    outcome,
    outcome_from_json,
    outcome_json,
)

__all__ = [
    "ConnectionDropped",
    "ConnectionsBusy",
    "Outcome",
    "OutcomeKind",
    "OutgoingMessage",
    "Phase",
    "RecipientResult",
    "Reply",
    "SendResult",
    "SessionError",
    "Transport",
    "outcome",
    "outcome_from_json",
    "outcome_json",
]
