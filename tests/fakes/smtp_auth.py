"""The fake SMTP server's side of AUTH: bearer tokens (XOAUTH2, OAUTHBEARER) and passwords.

Failures are answered the way Gmail does: for a bad token an error JSON in a 334 challenge,
then 535 once the client has answered it.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
from typing import TYPE_CHECKING, Any

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

from worker.transport.smtp.sasl import parse_xoauth2

if TYPE_CHECKING:
    from tests.fakes.smtp_records import SessionRecord
    from tests.fakes.smtp_server import FakeSmtpServer

__all__ = ["MECHANISMS", "parse_oauthbearer", "sasl_response", "verify_bearer", "verify_password"]


class _DropLoginDataNotice(logging.Filter):
    """aiosmtpd 1.4 logs a deprecation notice for its own login_data on every AUTH."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "login_data is deprecated" not in record.getMessage()


logging.getLogger("mail.log").addFilter(_DropLoginDataNotice())

MECHANISMS = ("XOAUTH2", "OAUTHBEARER", "PLAIN", "LOGIN")
SCOPE = "https://mail.google.com/"
GMAIL_REJECTED = (
    "535 5.7.8 Username and Password not accepted. For more information,"
    " go to https://support.google.com/mail/?p=BadCredentials"
)
# gs2 header "n,a=<user>," (or "n,,"), then ^A-separated key=value pairs, then ^A^A.
OAUTHBEARER_RESPONSE = re.compile(r"[ny],(?:a=([^,\x01]*))?,\x01(.*)\x01\x01", re.DOTALL)


async def verify_bearer(
    fake: FakeSmtpServer, record: SessionRecord, server: SMTP, args: list[str], mechanism: str
) -> AuthResult:
    """An XOAUTH2 or OAUTHBEARER exchange, its token checked by fake.token_ok."""
    response = await sasl_response(server, args)
    if response is None:
        return AuthResult(success=False, handled=True)  # already answered 501
    parse = parse_xoauth2 if mechanism == "XOAUTH2" else parse_oauthbearer
    parsed = parse(response)
    if parsed is None:
        fake._auth_failed(mechanism, None, None)
        return AuthResult(
            success=False, handled=False, message=f"501 5.5.2 Malformed {mechanism} response"
        )
    user, token = parsed
    record.auth_user = user
    if fake.token_ok(user, token):
        record.authenticated = True
        return AuthResult(success=True, auth_data=user, message="235 2.7.0 Accepted")
    if mechanism == "XOAUTH2" and not fake.gmail_style_failure:
        fake._auth_failed(mechanism, user, None)
        return AuthResult(
            success=False, handled=False, message="535 5.7.3 Authentication unsuccessful"
        )
    # Gmail (XOAUTH2) and RFC 7628 (OAUTHBEARER): an error JSON in a 334 challenge, which
    # the client must answer (empty line / "\x01") before it gets the 535.
    status = "401" if mechanism == "XOAUTH2" else "invalid_token"
    error = {"status": status, "schemes": "bearer", "scope": SCOPE}
    reply = await server.challenge_auth(json.dumps(error, separators=(",", ":")))
    client_reply = reply if isinstance(reply, bytes) else None
    fake._auth_failed(mechanism, user, client_reply)
    if client_reply is None:
        return AuthResult(success=False, handled=True)  # "*" or bad base64: answered 501
    final = GMAIL_REJECTED if mechanism == "XOAUTH2" else None  # None: aiosmtpd's 535 5.7.8
    return AuthResult(success=False, handled=False, message=final)


def verify_password(
    fake: FakeSmtpServer, record: SessionRecord, mechanism: str, data: Any
) -> AuthResult:
    """PLAIN or LOGIN (aiosmtpd's own), the password checked against fake.passwords."""
    assert isinstance(data, LoginPassword)
    user = data.login.decode(errors="replace")
    record.auth_user = user
    expected = fake.passwords.get(user)
    if expected is not None and data.password == expected.encode():
        record.authenticated = True
        return AuthResult(success=True, auth_data=data)
    fake._auth_failed(mechanism, user, None)
    return AuthResult(success=False, handled=False)  # aiosmtpd: 535 5.7.8 ...


async def sasl_response(server: SMTP, args: list[str]) -> bytes | None:
    """The SASL response from the AUTH line, or else the answer to an empty 334 challenge."""
    if len(args) == 1:
        reply = await server.challenge_auth("")
        return reply if isinstance(reply, bytes) else None
    if args[1] == "=":  # RFC 4954: an empty initial response
        return b""
    try:
        return base64.b64decode(args[1], validate=True)
    except binascii.Error:
        await server.push("501 5.5.2 Can't decode base64")
        return None


def parse_oauthbearer(response: bytes) -> tuple[str, str] | None:
    """RFC 7628: n,a=<user>,^Ahost=..^Aport=..^Aauth=Bearer <t>^A^A -> (user, token)."""
    match = OAUTHBEARER_RESPONSE.fullmatch(response.decode(errors="replace"))
    if match is None:
        return None
    pairs = {key: value for key, _, value in (kv.partition("=") for kv in match[2].split("\x01"))}
    auth = pairs.get("auth", "")
    if not auth.startswith("Bearer "):
        return None
    # RFC 5801 saslname: "," and "=" in the user name arrive as "=2C" and "=3D".
    user = re.sub("=2C|=3D", lambda m: "," if m[0] == "=2C" else "=", match[1] or "")
    return user, auth.removeprefix("Bearer ")
