"""SASL responses for SMTP AUTH with a bearer token: pure functions, no sockets.

``smtplib.SMTP.auth(mechanism, responder)`` calls ``responder()`` for the
initial response and ``responder(challenge)`` on every 334. A 334 after the
token was sent means the server refused it and is telling us why (Gmail sends
a base64 JSON error); the client must then answer so the server can send the
final 535: an empty line for XOAUTH2 (Google's XOAUTH2 protocol doc) and
``\\x01`` for OAUTHBEARER (RFC 7628 §3.2.3).
"""

from __future__ import annotations

import json
import logging
import re
from typing import Literal

log = logging.getLogger(__name__)

Mechanism = Literal["XOAUTH2", "OAUTHBEARER"]


def xoauth2(user: str, token: str) -> str:
    """``user=<mailbox>^Aauth=Bearer <token>^A^A`` (Google and Microsoft XOAUTH2)."""
    return f"user={user}\x01auth=Bearer {token}\x01\x01"


_XOAUTH2_RESPONSE = re.compile(r"user=([^\x01]*)\x01auth=Bearer ([^\x01]+)\x01\x01", re.DOTALL)


def parse_xoauth2(response: bytes) -> tuple[str, str] | None:
    """The server side of ``xoauth2()``: (user, token), or None if malformed."""
    match = _XOAUTH2_RESPONSE.fullmatch(response.decode("utf-8", errors="replace"))
    return (match[1], match[2]) if match else None


def oauthbearer(user: str, token: str, host: str, port: int) -> str:
    """RFC 7628 initial client response, with the GS2 header naming the user."""
    # RFC 5801 saslname: "," and "=" are escaped.
    saslname = user.replace("=", "=3D").replace(",", "=2C")
    return f"n,a={saslname},\x01host={host}\x01port={port}\x01auth=Bearer {token}\x01\x01"


class BearerResponder:
    """The callable smtplib's ``auth()`` drives; remembers the server's error, never the token."""

    def __init__(self, mechanism: Mechanism, initial_response: str) -> None:
        self.mechanism = mechanism
        self._initial = initial_response
        self._sent = False
        self.server_error: dict[str, object] | str | None = None

    def __call__(self, challenge: bytes | None = None) -> str:
        if not self._sent and not challenge:
            # First call, or the empty 334 of a server that refused an
            # initial response on the AUTH line.
            self._sent = True
            return self._initial
        self.server_error = _decode_error(challenge or b"")
        log.info("SMTP server refused the %s token: %s", self.mechanism, self.server_error)
        return "" if self.mechanism == "XOAUTH2" else "\x01"


def _decode_error(challenge: bytes) -> dict[str, object] | str:
    text = challenge.decode("utf-8", errors="replace")
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if isinstance(value, dict) else text
