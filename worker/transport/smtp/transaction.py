"""One SMTP mail transaction on an open session: MAIL, RCPT, DATA, and what they answered.

With PIPELINING (RFC 2920, offered by Exchange Online, Gmail and Postfix)
MAIL, every RCPT and DATA go out in one write and their replies are read in
order: one round trip instead of 2 + recipients.
"""

from __future__ import annotations

import re
import smtplib
from typing import TYPE_CHECKING

from worker.transport.base import OutgoingMessage
from worker.transport.errors import ConnectionDropped, SessionError
from worker.transport.outcome import Outcome, OutcomeKind, RecipientResult, Reply, outcome
from worker.transport.smtp.replies import smtp_reply

if TYPE_CHECKING:
    from worker.transport.smtp.session import SmtpSession

ServerReply = tuple[int, bytes]


def send(session: SmtpSession, message: OutgoingMessage) -> Outcome:
    """One transaction. Raises ConnectionDropped if nothing was sent yet."""
    smtp = session.smtp
    assert smtp is not None
    if message.smtputf8 and not smtp.has_extn("smtputf8"):
        return outcome(
            "mail",
            SessionError(
                "mail",
                f"{session.profile.host} does not support SMTPUTF8, which the "
                "internationalised addresses of this message need",
            ),
        )
    try:
        mail, rcpts, data = _envelope(smtp, message)
    except (OSError, smtplib.SMTPServerDisconnected) as exc:
        session.broken = True
        lost = smtp_reply("mail", None, f"{type(exc).__name__}: {exc}", session.profile.provider)
        raise ConnectionDropped("mail", lost) from exc
    if mail[0] != 250:
        _abort_data(session, data)
        return _refused(
            session, outcome("mail", smtp_reply("mail", *mail, session.profile.provider))
        )
    if any(code == 421 for code, _ in rcpts):
        session.broken = True
        raise ConnectionDropped(
            "rcpt", smtp_reply("rcpt", 421, "421 at RCPT", session.profile.provider)
        )
    replies = zip(message.recipients, rcpts, strict=True)
    provider = session.profile.provider
    results = tuple(_recipient(address, *reply, provider) for address, reply in replies)
    if not any(r.accepted for r in results):
        _abort_data(session, data)
        return _refused(
            session,
            outcome("rcpt", _all_refused(results, session.profile.provider), recipients=results),
        )
    return _data(session, message, results, data)


def _envelope(
    smtp: smtplib.SMTP, message: OutgoingMessage
) -> tuple[ServerReply, list[ServerReply], ServerReply | None]:
    """MAIL and RCPT replies, plus DATA's when the server pipelines."""
    options = ["SMTPUTF8", "BODY=8BITMIME"] if message.smtputf8 else []
    if not smtp.has_extn("pipelining"):
        mail = smtp.mail(message.sender, options)
        if mail[0] != 250:
            return mail, [], None
        return mail, [smtp.rcpt(address) for address in message.recipients], None
    commands = [
        " ".join(["MAIL FROM:" + smtplib.quoteaddr(message.sender), *options]),
        *("RCPT TO:" + smtplib.quoteaddr(address) for address in message.recipients),
        "DATA",
    ]
    smtp.send("".join(c + "\r\n" for c in commands).encode("utf-8"))
    mail = smtp.getreply()
    rcpts = [smtp.getreply() for _ in message.recipients]
    return mail, rcpts, smtp.getreply()


def _all_refused(results: tuple[RecipientResult, ...], provider: str) -> Reply:
    """Every recipient refused: the first one's reply, transient if any refusal was."""
    first = results[0]
    kind: OutcomeKind = "transient" if any(r.kind == "transient" for r in results) else "permanent"
    reply = smtp_reply("rcpt", first.code, first.text, provider)
    return Reply(
        kind=kind,
        code=first.code,
        text=first.text,
        enhanced_code=first.enhanced_code,
        hint=reply.hint,
    )


def _abort_data(session: SmtpSession, data: ServerReply | None) -> None:
    """A pipelined DATA that got 354 anyway (RFC 2920 §3.1): end it with an empty message."""
    if data is None or data[0] != 354:
        return
    assert session.smtp is not None
    try:
        session.smtp.send(b".\r\n")
        session.smtp.getreply()
    except (OSError, smtplib.SMTPException):
        session.broken = True


def _data(
    session: SmtpSession,
    message: OutgoingMessage,
    recipients: tuple[RecipientResult, ...],
    data: ServerReply | None,
) -> Outcome:
    smtp = session.smtp
    assert smtp is not None
    try:
        code, reply = data or smtp.docmd("DATA")
        if code != 354:  # nothing was sent
            return _refused(
                session, outcome("data", smtp_reply("data", code, reply, session.profile.provider))
            )
        smtp.send(_dot_stuffed(message.data))
        code, reply = smtp.getreply()
    except (OSError, smtplib.SMTPServerDisconnected) as exc:
        # The data may have been delivered: never retried silently.
        session.broken = True
        lost = f"connection lost after DATA: {type(exc).__name__}"
        return outcome("data", smtp_reply("data", None, lost, session.profile.provider))
    result = outcome(
        "data", smtp_reply("data", code, reply, session.profile.provider), recipients=recipients
    )
    if result.kind != "delivered":
        _refused(session, result)
    return result


def _refused(session: SmtpSession, result: Outcome) -> Outcome:
    """After a failed transaction: 421 means the server is closing; else RSET."""
    if result.code == 421:
        session.broken = True
        if result.phase == "mail":
            raise ConnectionDropped(
                "mail", smtp_reply("mail", 421, result.text, session.profile.provider)
            )
        return result
    try:
        assert session.smtp is not None
        session.smtp.rset()
    except (OSError, smtplib.SMTPException):
        session.broken = True
    return result


def _recipient(address: str, code: int, reply: bytes, provider: str) -> RecipientResult:
    result = smtp_reply("rcpt", code, reply, provider)
    return RecipientResult(
        address=address,
        accepted=code in (250, 251),
        code=code,
        enhanced_code=result.enhanced_code,
        text=result.text,
        kind=result.kind,
    )


def _dot_stuffed(data: bytes) -> bytes:
    """The message as DATA carries it (RFC 5321 §4.5.2), ending in CRLF.CRLF."""
    stuffed = re.sub(rb"(?m)^\.", b"..", data)
    if not stuffed.endswith(b"\r\n"):
        stuffed += b"\r\n"
    return stuffed + b".\r\n"
