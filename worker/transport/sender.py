"""Who a message says it is from: its From (and Sender) headers, edited on the bytes.

A message is built once, at intake, as its profile sends it. Two things may
send it as another address: the relay (a tool's From a provider would refuse)
and a fallback profile (a page its own profile could not deliver). Both
replace the From with the sending profile's and keep the original as
Reply-To, so replies still reach whoever wrote it; the rest of the message,
Message-ID included, is sent byte for byte.
"""

from __future__ import annotations

import email.utils
import re
from dataclasses import replace

from worker.credentials import Profile
from worker.transport.base import OutgoingMessage

_HEADER_END = re.compile(rb"\r?\n\r?\n")


def split_head(data: bytes) -> tuple[bytes, bytes]:
    """The header section, and the rest from the blank line on."""
    split = _HEADER_END.search(data)
    return (data[: split.start()], data[split.start() :]) if split else (data, b"\r\n\r\n")


def header_lines(head: bytes) -> list[bytes]:
    """Header fields with their folded continuations kept attached."""
    fields: list[bytes] = []
    for line in re.split(rb"\r?\n", head):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += b"\r\n" + line
        elif line:
            fields.append(line)
    return fields


def named(field: bytes, names: tuple[bytes, ...]) -> bool:
    return field.split(b":", 1)[0].strip().lower() in names


def from_value(profile: Profile) -> str:
    """The profile's sender as a header value; a non-ASCII name as an RFC 2047 encoded word."""
    return email.utils.formataddr((profile.from_name or "", profile.from_email), charset="utf-8")


def with_profile_from(lines: list[bytes], profile: Profile) -> list[bytes]:
    """``lines`` with the profile's From; the original From as Reply-To, a Sender dropped."""
    written = [line for line in lines if named(line, (b"from",))]
    replies_set = any(named(line, (b"reply-to",)) for line in lines)
    kept = [line for line in lines if not named(line, (b"from", b"sender"))]
    added = [b"From: " + from_value(profile).encode()]
    if written and not replies_set:  # replies still reach whoever wrote it
        added.append(b"Reply-To:" + written[0].split(b":", 1)[1])
    return added + kept


def as_sent_by(message: OutgoingMessage, profile: Profile) -> OutgoingMessage:
    """The message as ``profile`` sends it: its mailbox as envelope sender and in From."""
    head, body = split_head(message.data)
    data = b"\r\n".join(with_profile_from(header_lines(head), profile)) + body
    return replace(message, sender=profile.from_email, data=data)
