"""Build the MIME message for a notification: pure, validated, deterministic Message-ID.

Everything a producer sends is checked here, before anything is stored or
queued: header injection (CR/LF anywhere in a header value or address),
malformed or duplicate addresses, too many recipients, oversized messages.
The bytes are built once; sending them later is just SMTP.
"""

from __future__ import annotations

import email.policy
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

from worker.errors import MailpipeError
from worker.transport import OutgoingMessage

DEFAULT_MAX_RECIPIENTS = 100  # Gmail's per-message limit; Microsoft allows 500
DEFAULT_MAX_MESSAGE_BYTES = 10 * 1024 * 1024

# Headers mailpipe writes itself; a custom header may not replace them.
_RESERVED_HEADERS = frozenset(
    h.lower()
    for h in (
        "From", "Sender", "To", "Cc", "Bcc", "Reply-To", "Subject", "Date", "Message-ID",
        "MIME-Version", "Content-Type", "Content-Transfer-Encoding", "Return-Path",
    )
)  # fmt: skip
_HEADER_NAME = re.compile(r"^[!-9;-~]{1,76}$")  # RFC 5322 ftext: printable ASCII but ':'
_ATOM = r"[^\s@<>()\[\],;:\\\".]+"  # anything but space, specials and dots
_UTF8_ADDRESS = re.compile(rf"^[^\s@<>()\[\],;:\\\"]+@{_ATOM}(\.{_ATOM})+$")
_CONTENT_TYPE = re.compile(r"^[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+$")
# Built with 7bit so non-ASCII bodies get quoted-printable/base64 and need no
# 8BITMIME; SMTP's CRLF line endings.
_POLICY = email.policy.SMTP.clone(cte_type="7bit")
_POLICY_UTF8 = email.policy.SMTPUTF8.clone(cte_type="7bit")


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
    """Validate ``notification`` and build its bytes; raise InvalidMessageError on bad input."""
    sender = _address("from_email", from_email)
    _no_line_breaks("from_name", from_name)
    _no_line_breaks("subject", notification.subject)
    to = [_address("to", a) for a in notification.to]
    cc = [_address("cc", a) for a in notification.cc]
    bcc = [_address("bcc", a) for a in notification.bcc]
    recipients = _unique_recipients(to, cc, bcc)
    if len(recipients) > max_recipients:
        raise InvalidMessageError(
            "to", f"{len(recipients)} recipients, the profile allows {max_recipients}"
        )
    reply_to = _address("reply_to", notification.reply_to) if notification.reply_to else None
    smtputf8 = not all(a.isascii() for a in (sender, *recipients))

    message = EmailMessage(policy=_POLICY_UTF8 if smtputf8 else _POLICY)
    message["From"] = _header_address(sender, from_name)
    if to:
        message["To"] = ", ".join(_header_address(a) for a in to)
    if cc:
        message["Cc"] = ", ".join(_header_address(a) for a in cc)
    # Bcc recipients are only in the envelope: no header ever names them.
    if reply_to:
        message["Reply-To"] = _header_address(reply_to)
    message["Subject"] = notification.subject
    message["Date"] = format_datetime(now or datetime.now(UTC))
    message_id = make_message_id(job_id, sender)
    message["Message-ID"] = message_id
    for name, value in _custom_headers(notification.headers):
        message[name] = value
    message.set_content(notification.text)
    if notification.html is not None:
        message.add_alternative(notification.html, subtype="html")
    for attachment in notification.attachments:
        _attach(message, attachment)

    data = message.as_bytes()
    if len(data) > max_bytes:
        raise InvalidMessageError(
            "attachments", f"the message is {len(data)} bytes, the limit is {max_bytes}"
        )
    return OutgoingMessage(
        sender=sender,
        recipients=tuple(recipients),
        data=data,
        message_id=message_id,
        smtputf8=smtputf8,
    )


def make_message_id(job_id: str, sender: str) -> str:
    """Same job, same Message-ID: a resend after a crash can be recognised downstream."""
    domain = sender.rsplit("@", 1)[1]
    return f"<{job_id}@{domain}>"


def _address(field_name: str, value: str) -> str:
    _no_line_breaks(field_name, value)
    candidate = value.strip()
    if not candidate.isascii():
        # Internationalised (RFC 6531): the email package's parser rejects
        # non-ASCII local parts, so check the shape only; SMTPUTF8 does the rest.
        if not _UTF8_ADDRESS.match(candidate):
            raise InvalidMessageError(field_name, f"{_shown(candidate)} is not an email address")
        return _within_smtp_limits(field_name, candidate)
    try:
        parsed = Address(addr_spec=candidate)
    except (HeaderParseError, ValueError, IndexError):
        raise InvalidMessageError(
            field_name, f"{_shown(candidate)} is not an email address"
        ) from None
    if not parsed.username or "." not in parsed.domain:
        raise InvalidMessageError(field_name, f"{_shown(candidate)} is not an email address")
    return _within_smtp_limits(field_name, candidate)


def _within_smtp_limits(field_name: str, address: str) -> str:
    """RFC 5321 §4.5.3.1, counted in octets as they go on the wire (UTF-8 for SMTPUTF8).

    A server refuses a longer path, and a longer address would not fit the
    attempt records either: refused here, before anything is stored.
    """
    local, domain = address.rsplit("@", 1)
    limits = (
        (len(local.encode()), 64, "local part", "SMTP", "RFC 5321 4.5.3.1.1"),
        (len(domain.encode()), 255, "domain", "SMTP", "RFC 5321 4.5.3.1.2"),
        (max(len(x.encode()) for x in domain.split(".")), 63, "domain label", "DNS", "RFC 1035"),
        (len(address.encode()) + 2, 256, "path (the address in <>)", "SMTP", "RFC 5321 4.5.3.1.3"),
    )
    for octets, limit, what, who, rfc in limits:
        if octets > limit:
            raise InvalidMessageError(
                field_name,
                f"{_shown(address)}: the {what} is {octets} octets, {who} allows {limit} ({rfc})",
            )
    return address


def _shown(address: str) -> str:
    """The address as an error shows it: quoted, and cut if it is long."""
    return repr(address if len(address) <= 60 else address[:57] + "...")


def _header_address(address: str, display_name: str | None = None) -> str:
    if address.isascii():
        return str(Address(display_name=display_name or "", addr_spec=address))
    # Only reached with the SMTPUTF8 policy, which writes UTF-8 headers as they are.
    return f'"{display_name}" <{address}>' if display_name else address


def _no_line_breaks(field_name: str, value: str | None) -> None:
    if value is not None and ("\r" in value or "\n" in value):
        raise InvalidMessageError(field_name, "contains a line break (CR or LF)")


def _unique_recipients(*groups: Iterable[str]) -> list[str]:
    seen: dict[str, str] = {}
    names = ("to", "cc", "bcc")
    for field_name, group in zip(names, groups, strict=True):
        for address in group:
            if address.lower() in seen:
                raise InvalidMessageError(
                    field_name, f"'{address}' is already a recipient ({seen[address.lower()]})"
                )
            seen[address.lower()] = field_name
    if not seen:
        raise InvalidMessageError("to", "no recipients")
    return [a for group in groups for a in group]


def _custom_headers(headers: Mapping[str, str]) -> Iterable[tuple[str, str]]:
    for name, value in headers.items():
        if not _HEADER_NAME.match(name):
            raise InvalidMessageError(f"headers[{name!r}]", "not a valid header name")
        if name.lower() in _RESERVED_HEADERS:
            raise InvalidMessageError(f"headers[{name!r}]", "is set by mailpipe")
        _no_line_breaks(f"headers[{name!r}]", value)
        yield name, value


def _attach(message: EmailMessage, attachment: Attachment) -> None:
    _no_line_breaks("attachments.filename", attachment.filename)
    if not _CONTENT_TYPE.match(attachment.content_type):
        raise InvalidMessageError(
            "attachments.content_type", f"'{attachment.content_type}' is not a MIME type"
        )
    maintype, subtype = attachment.content_type.split("/", 1)
    message.add_attachment(
        attachment.data, maintype=maintype, subtype=subtype, filename=attachment.filename
    )
