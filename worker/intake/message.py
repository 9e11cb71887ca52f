"""Build the MIME message for a notification: pure, validated, deterministic Message-ID.

Everything a producer sends is checked here, before anything is stored or
queued: header injection (a control character or line separator anywhere in
a header value or address, raw or in an encoded word), malformed or
duplicate addresses, too many recipients, oversized messages. The bytes are
built once; sending them later is just SMTP.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.errors import MessageError
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

from worker.addresses import MAX_ADDRESS_CHARS, address_problem, shown
from worker.errors import MailpipeError
from worker.intake import email_policies
from worker.outgoing import OutgoingMessage

DEFAULT_MAX_RECIPIENTS = 100  # Gmail's per-message limit; Microsoft allows 500
DEFAULT_MAX_MESSAGE_BYTES = 10 * 1024 * 1024
# One header value (subject, sender name, custom header, filename), in
# characters: the email package folds a long value in quadratic time.
MAX_HEADER_CHARS = 2000

# Headers mailpipe writes itself; a custom header may not replace them.
_RESERVED_HEADERS = frozenset(
    h.lower()
    for h in (
        "From", "Sender", "To", "Cc", "Bcc", "Reply-To", "Subject", "Date", "Message-ID",
        "MIME-Version", "Content-Type", "Content-Transfer-Encoding", "Return-Path", "Orig-Date",
    )
)  # fmt: skip
# Content-* describe the MIME structure mailpipe builds; Resent-* belong to a resending agent.
_RESERVED_PREFIXES = ("content-", "resent-")
_HEADER_NAME = re.compile(r"[!-9;-~]{1,76}")  # RFC 5322 ftext: printable ASCII but ':'
_CONTENT_TYPE = re.compile(r"[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+")
# Never in a header: the C0 and C1 controls but TAB (DEL too), the Unicode
# line and paragraph separators, and lone surrogates (not Unicode text).
_NOT_IN_HEADERS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_LINE_SEPARATORS = "\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"  # str.splitlines() splits there
# What the email package's header parser raises on input it cannot take.
_EMAIL_ERRORS = (MessageError, ValueError, IndexError)


class InvalidMessageError(MailpipeError):
    """The notification cannot be sent as given; ``field`` names what to fix."""

    def __init__(self, field_name: str, problem: str) -> None:
        super().__init__(f"{field_name}: {problem}")
        self.field = field_name


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    data: bytes = field(repr=False)


@dataclass(frozen=True)
class Notification:
    """What a producer asks to send."""

    to: tuple[str, ...]
    subject: str
    text: str
    html: str | None = None
    cc: tuple[str, ...] = ()
    bcc: tuple[str, ...] = ()
    reply_to: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    attachments: tuple[Attachment, ...] = ()


def build_message(
    notification: Notification,
    *,
    job_id: str,
    from_email: str,
    from_name: str | None = None,
    max_recipients: int = DEFAULT_MAX_RECIPIENTS,
    max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    now: datetime | None = None,
) -> OutgoingMessage:
    """Validate ``notification`` and build its bytes; raise InvalidMessageError on bad input.

    The message is built before its size is known: a caller holding input of
    unknown size checks it first (``worker.intake.arguments.check_sizes``, as
    ``notify`` does), so that nothing too big is ever built.
    """
    sender = check_address("from_email", from_email)
    if from_name is not None:
        _header_value("from_name", from_name)
    checked = _checked(notification, max_recipients)
    to, cc, reply_to, recipients = checked.to, checked.cc, checked.reply_to, checked.recipients
    smtputf8 = not all(a.isascii() for a in (sender, *recipients))

    message = EmailMessage(policy=email_policies.BUILD_UTF8 if smtputf8 else email_policies.BUILD)
    sender_field = "from_name" if from_name else "from_email"
    _set_header(message, sender_field, "From", _header_address(sender, from_name))
    if to:
        _set_header(message, "to", "To", ", ".join(_header_address(a) for a in to))
    if cc:
        _set_header(message, "cc", "Cc", ", ".join(_header_address(a) for a in cc))
    # Bcc recipients are only in the envelope: no header ever names them.
    if reply_to:
        _set_header(message, "reply_to", "Reply-To", _header_address(reply_to))
    _set_header(message, "subject", "Subject", notification.subject)
    message["Date"] = format_datetime(now or datetime.now(UTC))
    message_id = make_message_id(job_id, sender)
    message["Message-ID"] = message_id
    for name, value in _custom_headers(notification.headers):
        _set_header(message, f"headers[{shown(name)}]", name, value)
    message.set_content(notification.text)
    if notification.html is not None:
        message.add_alternative(notification.html, subtype="html")
    for attachment in notification.attachments:
        _attach(message, attachment)

    data = message.as_bytes()
    if len(data) > max_bytes:
        raise InvalidMessageError(
            _largest_part(notification),
            f"the message is {len(data)} bytes, the limit is {max_bytes}",
        )
    return OutgoingMessage(
        sender=sender,
        recipients=tuple(recipients),
        data=data,
        message_id=message_id,
        smtputf8=smtputf8,
        envid=job_id,
    )


def check_notification(
    notification: Notification, *, max_recipients: int = DEFAULT_MAX_RECIPIENTS
) -> None:
    """Refuse what ``build_message`` would refuse in ``notification``, without building it.

    Cheap next to building: a caller checking many notifications (a batch)
    finds a bad one before it has built any. The built message may still be
    over its size limit, which only building can tell.
    """
    _checked(notification, max_recipients)
    for _ in _custom_headers(notification.headers):
        pass
    for attachment in notification.attachments:
        _header_value("attachments.filename", attachment.filename)
        _attachment_type(attachment.content_type)


@dataclass(frozen=True)
class _Checked:
    to: list[str]
    cc: list[str]
    reply_to: str | None
    recipients: list[str]


def _checked(notification: Notification, max_recipients: int) -> _Checked:
    """The subject, recipients and bodies checked; the addresses as they will be used."""
    _header_value("subject", notification.subject)
    count = len(notification.to) + len(notification.cc) + len(notification.bcc)
    if count > max_recipients:
        raise InvalidMessageError("to", f"{count} recipients, the profile allows {max_recipients}")
    to = [check_address("to", a) for a in notification.to]
    cc = [check_address("cc", a) for a in notification.cc]
    bcc = [check_address("bcc", a) for a in notification.bcc]
    recipients = _unique_recipients(to, cc, bcc)
    reply_to = check_address("reply_to", notification.reply_to) if notification.reply_to else None
    _body_text("text", notification.text)
    if notification.html is not None:
        _body_text("html", notification.html)
    return _Checked(to=to, cc=cc, reply_to=reply_to, recipients=recipients)


def make_message_id(job_id: str, sender: str) -> str:
    """Same job, same Message-ID: a resend after a crash can be recognised downstream."""
    domain = sender.rsplit("@", 1)[1]
    return f"<{job_id}@{domain}>"


def _header_text(field_name: str, value: str, *, decoded: bool = False) -> None:
    """Refuse a control character (but TAB), a line separator or a lone surrogate.

    ``decoded``: ``value`` is what the email package made of a header, its
    encoded words (``=?utf-8?q?…?=``) decoded.
    """
    found = _NOT_IN_HEADERS.search(value)
    if found is None:
        return
    what = _describe(found.group())
    if decoded:
        raise InvalidMessageError(
            field_name, f"has an encoded word (=?...?=) that decodes to {what}"
        )
    raise InvalidMessageError(field_name, f"contains {what} at position {found.start()}")


def _describe(char: str) -> str:
    if char in "\r\n":
        return "a line break (CR or LF)"
    code = f"U+{ord(char):04X}"
    if char in _LINE_SEPARATORS:
        return f"a line separator ({code})"
    if _SURROGATE.match(char):
        return f"a lone surrogate ({code}), which is not Unicode text"
    return f"a control character ({code})"


def _header_value(field_name: str, value: str) -> None:
    if len(value) > MAX_HEADER_CHARS:
        raise InvalidMessageError(
            field_name, f"is {len(value)} characters long, at most {MAX_HEADER_CHARS}"
        )
    _header_text(field_name, value)
    if "=?" in value:  # encoded words: the email package decodes them, then writes the result
        try:
            decoded = str(email_policies.BUILD.header_factory("X-Unstructured", value))
        except _EMAIL_ERRORS:
            raise InvalidMessageError(field_name, "cannot be written as a mail header") from None
        _header_text(field_name, decoded, decoded=True)


def _body_text(field_name: str, value: str) -> None:
    found = _SURROGATE.search(value)
    if found is not None:
        what = _describe(found.group())
        raise InvalidMessageError(field_name, f"contains {what} at position {found.start()}")


def _set_header(message: EmailMessage, field_name: str, name: str, value: str) -> None:
    """Add a header, refusing what its encoded words decode to as the raw value is refused."""
    try:
        message[name] = value
    except _EMAIL_ERRORS:
        raise InvalidMessageError(field_name, "cannot be written as a mail header") from None
    written = message.get_all(name) or []
    _header_text(field_name, str(written[-1]), decoded=True)


def check_address(field_name: str, value: str) -> str:
    """``value`` as an address SMTP can carry (stripped); InvalidMessageError naming the field."""
    if len(value) <= MAX_ADDRESS_CHARS:  # a longer one is refused for its length alone
        _header_text(field_name, value)
        value = value.strip()
    problem = address_problem(value)
    if problem:
        raise InvalidMessageError(field_name, problem)
    return value


def _header_address(address: str, display_name: str | None = None) -> str:
    if address.isascii():
        return str(Address(display_name=display_name or "", addr_spec=address))
    # Only reached with the SMTPUTF8 policy, which writes UTF-8 headers as they are.
    if not display_name:
        return address
    quoted = display_name.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{quoted}" <{address}>'


def _unique_recipients(*groups: Iterable[str]) -> list[str]:
    seen: dict[str, str] = {}
    names = ("to", "cc", "bcc")
    for field_name, group in zip(names, groups, strict=True):
        for address in group:
            if address.lower() in seen:
                raise InvalidMessageError(
                    field_name, f"{shown(address)} is already a recipient ({seen[address.lower()]})"
                )
            seen[address.lower()] = field_name
    if not seen:
        raise InvalidMessageError("to", "no recipients")
    return [a for group in groups for a in group]


def _custom_headers(headers: Mapping[str, str]) -> Iterable[tuple[str, str]]:
    for name, value in headers.items():
        field_name = f"headers[{shown(name)}]"
        if not _HEADER_NAME.fullmatch(name):
            raise InvalidMessageError(field_name, "not a valid header name")
        if name.lower() in _RESERVED_HEADERS or name.lower().startswith(_RESERVED_PREFIXES):
            raise InvalidMessageError(field_name, "is set by mailpipe")
        _header_value(field_name, value)
        yield name, value


def _attachment_type(content_type: str) -> tuple[str, str]:
    """An attachment's MIME type as (maintype, subtype), if it can be sent as bytes."""
    if not _CONTENT_TYPE.fullmatch(content_type):
        raise InvalidMessageError(
            "attachments.content_type", f"{shown(content_type)} is not a MIME type"
        )
    maintype, subtype = content_type.split("/", 1)
    if maintype.lower() in ("multipart", "message"):
        # Containers of parts, not bytes: the email package would write them
        # base64-encoded with bare LFs, which RFC 2046 forbids.
        raise InvalidMessageError(
            "attachments.content_type",
            f"{shown(content_type)} cannot be sent as bytes: "
            "use application/octet-stream (or message/rfc822 as a .eml file's type there)",
        )
    return maintype, subtype


def _attach(message: EmailMessage, attachment: Attachment) -> None:
    _header_value("attachments.filename", attachment.filename)
    maintype, subtype = _attachment_type(attachment.content_type)
    try:
        message.add_attachment(
            attachment.data, maintype=maintype, subtype=subtype, filename=attachment.filename
        )
    except _EMAIL_ERRORS:
        raise InvalidMessageError(
            "attachments.filename", "cannot be written as a mail header"
        ) from None
    part = list(message.iter_parts())[-1]
    for value in part.values():
        _header_text("attachments.filename", str(value), decoded=True)


def _largest_part(notification: Notification) -> str:
    """The field to name when the built message is too big: what most of it is."""
    sizes = {
        "text": len(notification.text),
        "html": len(notification.html or ""),
        "attachments": sum(len(a.data) for a in notification.attachments) * 4 // 3,  # base64
    }
    return max(sizes, key=sizes.__getitem__)
