"""Errors of a transport session, under the project's root (see ``worker.errors``)."""

from __future__ import annotations

from dataclasses import replace

from worker.errors import ErrorKind, MailpipeError
from worker.transport.outcome import Outcome, Phase, Reply, outcome


class SessionError(MailpipeError):
    """The session cannot go on: the server's reply, or our own reason, at ``phase``.

    ``str()`` is the outcome's one-line summary, never a secret.
    """

    def __init__(
        self,
        phase: Phase,
        reason: Reply | str,
        *,
        kind: ErrorKind | None = None,
        hint: str | None = None,
    ) -> None:
        self.phase = phase
        self.reply = reason if isinstance(reason, Reply) else None
        if isinstance(reason, Reply):
            kind = kind or _error_kind(reason)
            message, hint = reason.text, hint or reason.hint
        else:
            message = reason
        super().__init__(message, kind=kind, hint=hint)

    @property
    def outcome(self) -> Outcome:
        if self.reply is None:
            return outcome(self.phase, self)
        return outcome(self.phase, replace(self.reply, kind=self.kind))

    def __str__(self) -> str:
        return self.outcome.summary()


class ConnectionDropped(SessionError):
    """The connection died before any message data was sent: safe to retry elsewhere."""

    kind: ErrorKind = "transient"


class ConnectionsBusy(SessionError):
    """Other workers hold every connection slot of the mailbox."""

    kind: ErrorKind = "transient"


def _error_kind(reply: Reply) -> ErrorKind:
    # A session error is never "delivered": a 2xx/3xx where it did not belong
    # (an unexpected EHLO reply) leaves the session unusable, as a transient fault.
    return "transient" if reply.kind == "delivered" else reply.kind
