"""Is this an email address SMTP can carry? One check for every way one comes in.

Used by the intake (notify, the HTTP API, the relay), the profiles file
(``from_email``, ``subject``) and routes (``to``, ``cc``, ``bcc``). Pure: the
callers turn a problem into their own error. The other address a job may
carry, its ``callback_url``, is checked here too (notify, the API, routes).
"""

from __future__ import annotations

import re
from email.errors import MessageError
from email.headerregistry import Address
from urllib.parse import urlsplit

# Far longer than any address SMTP carries (256 octets): refused before parsing.
MAX_ADDRESS_CHARS = 1000
_ATOM = r"[^\s@<>()\[\],;:\\\".]+"  # anything but space, specials and dots
_UTF8_ADDRESS = re.compile(rf"[^\s@<>()\[\],;:\\\"]+@{_ATOM}(\.{_ATOM})+")
# No blank or control character anywhere in an address (the parser would tolerate some).
_BLANK_OR_CONTROL = re.compile(r"[\s\x00-\x1f\x7f-\x9f\u2028\u2029]")
# What the email package's address parser raises on input it cannot take.
_EMAIL_ERRORS = (MessageError, ValueError, IndexError)


def shown(value: str) -> str:
    """A value as an error shows it: quoted, escaped to one line, and cut if it is long."""
    return repr(value if len(value) <= 60 else value[:57] + "...")


def address_problem(address: str) -> str | None:
    """Why ``address`` (already stripped) is not one SMTP can carry; None when it is.

    ASCII addresses are parsed by the email package (RFC 5322 addr-spec);
    internationalised ones (RFC 6531) have their shape checked, since that
    parser rejects non-ASCII local parts. Then RFC 5321's length limits.
    """
    if len(address) > MAX_ADDRESS_CHARS:
        return (
            f"{shown(address)} is {len(address)} characters long, "
            "SMTP allows 256 octets (RFC 5321 4.5.3.1.3)"
        )
    if _BLANK_OR_CONTROL.search(address):
        return f"{shown(address)} is not an email address"
    if not address.isascii():
        if not _UTF8_ADDRESS.fullmatch(address):
            return f"{shown(address)} is not an email address"
        return _over_smtp_limits(address)
    try:
        parsed = Address(addr_spec=address)
    except _EMAIL_ERRORS:
        return f"{shown(address)} is not an email address"
    if not parsed.username or "." not in parsed.domain:
        return f"{shown(address)} is not an email address"
    return _over_smtp_limits(address)


def _over_smtp_limits(address: str) -> str | None:
    """RFC 5321 §4.5.3.1, counted in octets as they go on the wire (UTF-8 for SMTPUTF8).

    A server refuses a longer path, and a longer address would not fit the
    attempt records either: refused before anything is stored.
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
            return f"{shown(address)}: the {what} is {octets} octets, {who} allows {limit} ({rfc})"
    return None


# Longer than any callback URL needs; the store's column is this wide.
MAX_CALLBACK_URL_CHARS = 2000


def callback_url_problem(value: object) -> str | None:
    """What is wrong with ``value`` as a callback URL (http or https, with a host), or None."""
    if not isinstance(value, str):
        return "must be a string (an http or https URL)"
    if len(value) > MAX_CALLBACK_URL_CHARS:
        return f"longer than {MAX_CALLBACK_URL_CHARS} characters"
    try:
        parts = urlsplit(value)
    except ValueError:  # an unclosed "[" (urllib: "Invalid IPv6 URL")
        return "must be an http or https URL with a host"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http or https URL with a host"
    return None
