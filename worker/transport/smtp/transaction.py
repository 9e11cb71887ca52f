"""SMTP mail transactions on an open session: MAIL, RCPT, DATA, and what they answered.

With PIPELINING (RFC 2920, offered by Exchange Online, Gmail and Postfix)
MAIL, every RCPT and DATA go out in one write and their replies are read in
order: one round trip instead of 2 + recipients, plus one for the content.
``send_many`` with ``group`` also sends each message's content in the same
write as the next message's MAIL, RCPT and DATA (RFC 2920 §3.1 lets the content
start a group): one round trip per message in a run of messages. Only for
profiles that opt in (``grouping.py`` says why).
"""

from __future__ import annotations

import re
import smtplib
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from worker.transport.base import OutgoingMessage
from worker.transport.errors import ConnectionDropped, SessionError
from worker.transport.outcome import Outcome, OutcomeKind, RecipientResult, Reply, outcome
from worker.transport.smtp.replies import lost, smtp_reply

if TYPE_CHECKING:
    from worker.transport.smtp.session import SmtpSession

ServerReply = tuple[int, bytes]


def send(session: SmtpSession, message: OutgoingMessage) -> Outcome:
    """One transaction. Raises ConnectionDropped if nothing was sent yet."""
    smtp = session.smtp
    assert smtp is not None
    if message.smtputf8 and not smtp.has_extn("smtputf8"):
        return _no_smtputf8(session)
    try:
        mail, rcpts, data = _envelope(session, message)
    except OSError as exc:
        raise _dropped(session, exc) from exc
    return _after_envelope(session, message, mail, rcpts, data)


def send_many(
    session: SmtpSession, messages: Sequence[OutgoingMessage], *, group: bool = False
) -> Iterator[Outcome]:
    """One transaction per message, each outcome as soon as it is known.

    Raises ConnectionDropped for the first message of which nothing was sent;
    the outcomes of the messages before it have been yielded. With ``group``, a
    connection lost after a grouped content sets ``session.lost_grouped_content``.
    """
    smtp = session.smtp
    assert smtp is not None
    if not group or not smtp.has_extn("pipelining"):
        yield from (send(session, message) for message in messages)
        return
    # A message whose DATA got 354: its content goes out with the next write.
    held: Held | None = None
    for message in messages:
        if session.broken:  # a 421 or a failed RSET ended the last transaction
            raise _dropped(session, ConnectionError("the connection is closing"))
        if message.smtputf8 and not smtp.has_extn("smtputf8"):
            if held:
                yield _content(session, *held)
                held = None
            yield _no_smtputf8(session)
            continue
        yield from _write_group(session, message, held)
        held = None
        try:
            mail, rcpts, data = _replies(smtp, message)
        except OSError as exc:
            raise _dropped(session, exc) from exc
        results = _ready_for_content(session, message, mail, rcpts, data)
        if results:
            held = (message, results)
        else:
            yield _after_envelope(session, message, mail, rcpts, data)
    if held:
        yield _content(session, *held)


Held = tuple[OutgoingMessage, tuple[RecipientResult, ...]]


def _write_group(
    session: SmtpSession, message: OutgoingMessage, held: Held | None
) -> Iterator[Outcome]:
    """Write the held message's content and this message's group; yield the held outcome."""
    assert session.smtp is not None
    try:
        group = _group(message, dsn=_asks_dsn(session))
        session.smtp.send((_dot_stuffed(held[0].data) if held else b"") + group)
    except OSError as exc:
        if held:
            session.lost_grouped_content = True
            yield _lost_after_data(session, exc)
        raise _dropped(session, exc) from exc
    if held:
        result = _content_reply(session, held[1])
        if result.code is None:  # no reply at all: lost after the grouped content
            session.lost_grouped_content = True
        yield result
        if session.broken:  # lost or closing (421): this message's content never went
            raise _dropped(session, ConnectionError("closed after the previous message"))


def _ready_for_content(
    session: SmtpSession,
    message: OutgoingMessage,
    mail: ServerReply,
    rcpts: list[ServerReply],
    data: ServerReply | None,
) -> tuple[RecipientResult, ...] | None:
    """The recipients' results when the server waits for the content (354), else None."""
    if mail[0] != 250 or data is None or data[0] != 354 or any(c == 421 for c, _ in rcpts):
        return None
    results = _recipients(session, message, rcpts)
    return results if any(r.accepted for r in results) else None


def _after_envelope(
    session: SmtpSession,
    message: OutgoingMessage,
    mail: ServerReply,
    rcpts: list[ServerReply],
    data: ServerReply | None,
) -> Outcome:
    """The rest of a transaction once MAIL, RCPT (and a pipelined DATA) have answered."""
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
    results = _recipients(session, message, rcpts)
    if not any(r.accepted for r in results):
        _abort_data(session, data)
        return _refused(
            session,
            outcome("rcpt", _all_refused(results, session.profile.provider), recipients=results),
        )
    return _data(session, message, results, data)


def _envelope(
    session: SmtpSession, message: OutgoingMessage
) -> tuple[ServerReply, list[ServerReply], ServerReply | None]:
    """MAIL and RCPT replies, plus DATA's when the server pipelines."""
    smtp = session.smtp
    assert smtp is not None
    dsn = _asks_dsn(session)
    if not smtp.has_extn("pipelining"):
        mail = smtp.mail(message.sender, _mail_options(message, dsn=dsn))
        if mail[0] != 250:
            return mail, [], None
        rcpts = [smtp.rcpt(a, _rcpt_options(a, dsn=dsn)) for a in message.recipients]
        return mail, rcpts, None
    smtp.send(_group(message, dsn=dsn))
    return _replies(smtp, message)


def _asks_dsn(session: SmtpSession) -> bool:
    """Reports are asked for: the profile wants them and the server offers DSN."""
    assert session.smtp is not None
    return session.profile.dsn and session.smtp.has_extn("dsn")


def _mail_options(message: OutgoingMessage, *, dsn: bool = False) -> list[str]:
    options = ["SMTPUTF8", "BODY=8BITMIME"] if message.smtputf8 else []
    if dsn:
        # RFC 3461 §4.3, §4.4: a failure report carries the headers only, and names
        # the job, so a bounce in the sending mailbox can be matched to it.
        options.append("RET=HDRS")
        if message.envid:
            options.append("ENVID=" + xtext(message.envid[:_ENVID_MAX]))
    return options


def _rcpt_options(address: str, *, dsn: bool = False) -> list[str]:
    if not dsn:
        return []
    # A report for failures and delays only: success reports would fill the mailbox.
    options = ["NOTIFY=FAILURE,DELAY"]
    if address.isascii():  # RFC 3461 §4.2; an internationalised one needs RFC 6533's utf-8 type
        options.append("ORCPT=rfc822;" + xtext(address))
    return options


# RFC 3461 §4.4: ENVID is at most 100 characters.
_ENVID_MAX = 100


def xtext(value: str) -> str:
    """``value`` as RFC 3461 xtext (§4): "+", "=" and what is not printable ASCII as "+HH"."""
    return "".join(
        c if "!" <= c <= "~" and c not in "+=" else "".join(f"+{b:02X}" for b in c.encode())
        for c in value
    )


def unxtext(value: str) -> str:
    """RFC 3461 xtext decoded: each "+HH" back to its byte (a malformed one is kept as is)."""
    decoded = re.sub(rb"\+([0-9A-Fa-f]{2})", lambda m: bytes([int(m.group(1), 16)]), value.encode())
    return decoded.decode("utf-8", "replace")


def _group(message: OutgoingMessage, *, dsn: bool = False) -> bytes:
    """MAIL, every RCPT and DATA as one pipelined group."""
    mail = ["MAIL FROM:" + smtplib.quoteaddr(message.sender), *_mail_options(message, dsn=dsn)]
    commands = [
        " ".join(mail),
        *(
            " ".join(["RCPT TO:" + smtplib.quoteaddr(a), *_rcpt_options(a, dsn=dsn)])
            for a in message.recipients
        ),
        "DATA",
    ]
    return "".join(c + "\r\n" for c in commands).encode("utf-8")


def _replies(
    smtp: smtplib.SMTP, message: OutgoingMessage
) -> tuple[ServerReply, list[ServerReply], ServerReply]:
    """The replies to a pipelined group, in order (RFC 2920: every one is checked)."""
    mail = smtp.getreply()
    rcpts = [smtp.getreply() for _ in message.recipients]
    return mail, rcpts, smtp.getreply()


def _recipients(
    session: SmtpSession, message: OutgoingMessage, rcpts: list[ServerReply]
) -> tuple[RecipientResult, ...]:
    replies = zip(message.recipients, rcpts, strict=True)
    provider = session.profile.provider
    return tuple(_recipient(address, *reply, provider) for address, reply in replies)


def _no_smtputf8(session: SmtpSession) -> Outcome:
    return outcome(
        "mail",
        SessionError(
            "mail",
            f"{session.profile.host} does not support SMTPUTF8, which the "
            "internationalised addresses of this message need",
        ),
    )


def _dropped(session: SmtpSession, exc: OSError) -> ConnectionDropped:
    """The connection failed before any of the message was sent."""
    session.broken = True
    return ConnectionDropped("mail", lost(exc))


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
    except OSError:
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
    except OSError as exc:
        return _lost_after_data(session, exc)
    if code != 354:  # nothing was sent
        return _refused(
            session, outcome("data", smtp_reply("data", code, reply, session.profile.provider))
        )
    result = _content(session, message, recipients)
    if result.kind != "delivered" and not session.broken:
        _refused(session, result)
    return result


def _content(
    session: SmtpSession, message: OutgoingMessage, recipients: tuple[RecipientResult, ...]
) -> Outcome:
    """Send the content after a 354 and read the final reply."""
    assert session.smtp is not None
    try:
        session.smtp.send(_dot_stuffed(message.data))
    except OSError as exc:
        return _lost_after_data(session, exc)
    return _content_reply(session, recipients)


def _content_reply(session: SmtpSession, recipients: tuple[RecipientResult, ...]) -> Outcome:
    """The reply to the content: the transaction is over either way (no RSET needed)."""
    assert session.smtp is not None
    try:
        code, reply = session.smtp.getreply()
    except OSError as exc:
        return _lost_after_data(session, exc)
    if code == 421:
        session.broken = True
    provider = session.profile.provider
    return outcome("data", smtp_reply("data", code, reply, provider), recipients=recipients)


def _lost_after_data(session: SmtpSession, exc: BaseException) -> Outcome:
    # The data may have been delivered: never retried silently.
    session.broken = True
    lost = f"connection lost after DATA: {type(exc).__name__}"
    return outcome("data", smtp_reply("data", None, lost, session.profile.provider))


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
    except OSError:
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
