"""Delivery status reports (RFC 3464) read from a mailbox: what they say about which job.

A report is ``multipart/report; report-type=delivery-status``: a human part,
a ``message/delivery-status`` part (per-message fields, a blank line, then a
group of fields per recipient), and the returned message or its headers
(``message/rfc822`` or ``text/rfc822-headers``). Postfix, Exim, Exchange
Online (its NDRs) and Gmail all send this shape. A report names its job by
``Original-Envelope-Id`` (the ENVID mailpipe sent, RFC 3461) or, when the
reporting server dropped it, by the returned headers' ``Message-ID``.

Pure: bytes in, a ``Report`` (or None: not a delivery status report) out;
nothing here logs a message's content.
"""

from __future__ import annotations

import email
import email.policy
import re
from dataclasses import dataclass
from email.message import EmailMessage, Message

from worker.transport.smtp.transaction import unxtext

# How much of a diagnostic is kept: enough to say why, not a quoted message.
DIAGNOSTIC_CHARS = 500
_STATUS = re.compile(r"^([245])\.\d{1,3}\.\d{1,3}$")
_SMTP_CODE = re.compile(r"\b([245]\d\d)\b")


@dataclass(frozen=True)
class RecipientStatus:
    """One recipient's fields: ``event`` is ``bounced`` (5.x.x) or ``delayed`` (4.x.x)."""

    recipient: str
    event: str
    status: str
    smtp_code: int | None
    diagnostic: str


@dataclass(frozen=True)
class Report:
    envelope_id: str | None
    message_id: str | None  # of the returned message
    recipients: tuple[RecipientStatus, ...]


def parse_report(data: bytes) -> Report | None:
    """The report in ``data``, or None when it is no delivery status report."""
    message = email.message_from_bytes(data, policy=email.policy.default)
    if message.get_content_type() != "multipart/report":
        return None
    if str(message.get_param("report-type", "")).lower() != "delivery-status":
        return None
    status = returned = None
    for part in message.iter_parts() if isinstance(message, EmailMessage) else ():
        kind = part.get_content_type()
        if kind == "message/delivery-status" and status is None:
            status = part
        elif kind in ("message/rfc822", "text/rfc822-headers") and returned is None:
            returned = part
    if status is None:
        return None
    groups = _field_groups(status)
    if not groups:
        return None
    per_message, per_recipient = groups[0], groups[1:]
    envid = per_message.get("original-envelope-id")
    recipients = tuple(r for r in (_recipient(g) for g in per_recipient) if r is not None)
    return Report(
        envelope_id=unxtext(envid.strip()) if envid else None,
        message_id=_returned_message_id(returned),
        recipients=recipients,
    )


def _field_groups(part: Message) -> list[dict[str, str]]:
    """The delivery-status part's groups of fields (blank-line separated), names lower-cased.

    The email package parses the part as a list of header blocks for some
    inputs and leaves it as text for others: the text is read either way.
    """
    payload = part.get_payload()
    if isinstance(payload, list):  # parsed: one Message per group
        return [
            {k.lower(): " ".join(str(v).split()) for k, v in block.items()}
            for block in payload
            if isinstance(block, Message)
        ]
    raw = part.get_payload(decode=True)
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(payload)
    groups: list[dict[str, str]] = []
    for block in re.split(r"\r?\n\s*\r?\n", text.strip()):
        fields: dict[str, str] = {}
        name = None
        for line in block.splitlines():
            if line[:1] in (" ", "\t") and name:  # a folded continuation
                fields[name] += " " + line.strip()
            elif ":" in line:
                name, value = line.split(":", 1)
                name = name.strip().lower()
                fields[name] = value.strip()
        if fields:
            groups.append(fields)
    return groups


def _recipient(fields: dict[str, str]) -> RecipientStatus | None:
    """A ``failed`` or ``delayed`` recipient; others (delivered, relayed, expanded) say nothing."""
    action = fields.get("action", "").lower()
    status = fields.get("status", "").split(" ")[0]
    recipient = _address(fields.get("original-recipient") or fields.get("final-recipient"))
    match = _STATUS.match(status)
    if recipient is None or match is None or action not in ("failed", "delayed"):
        return None
    event = "bounced" if match.group(1) == "5" and action == "failed" else "delayed"
    diagnostic = fields.get("diagnostic-code", "")
    diagnostic = diagnostic.split(";", 1)[1].strip() if ";" in diagnostic else diagnostic
    code = _SMTP_CODE.search(diagnostic)
    return RecipientStatus(
        recipient=recipient,
        event=event,
        status=status,
        smtp_code=int(code.group(1)) if code else None,
        diagnostic=diagnostic[:DIAGNOSTIC_CHARS],
    )


def _address(value: str | None) -> str | None:
    """``rfc822;user@example.com`` → ``user@example.com`` (ORCPT is xtext, RFC 3461 §4.2)."""
    if not value:
        return None
    _, _, address = value.partition(";") if ";" in value else ("", "", value)
    address = unxtext(address.strip()).strip("<>")
    return address.lower() if "@" in address else None


def _returned_message_id(part: Message | None) -> str | None:
    if part is None:
        return None
    if part.get_content_type() == "message/rfc822":
        inner = part.get_payload()
        original = inner[0] if isinstance(inner, list) and inner else None
        value = original.get("Message-ID") if isinstance(original, Message) else None
    else:  # text/rfc822-headers: the headers as text
        raw = part.get_payload(decode=True)
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(part.get_payload())
        value = email.message_from_string(text, policy=email.policy.default).get("Message-ID")
    return str(value).strip() if value else None
