"""smtplib clients for the FakeSmtpServer self-tests (tests/test_smtp_server*.py).

A server factory with the self-tests' user, token and password; a client that has said EHLO
over TLS; SASL responders for XOAUTH2 and OAUTHBEARER; a small alert message.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Callable
from email.message import EmailMessage
from typing import Any

from tests.fakes.smtp_server import FakeSmtpServer, ServerFactory, TlsFiles
from tests.leaks import SecretRegistry

USER = "alerts@example.com"
TOKEN = "ya29.good-access-token-0123456789"
BAD_TOKEN = "ya29.expired-access-token-9876543210"
PASSWORD = "correct horse battery staple"

MakeServer = Callable[..., FakeSmtpServer]


def with_test_credentials(make_server: ServerFactory, secrets: SecretRegistry) -> MakeServer:
    """The suite's server factory, accepting USER with TOKEN or PASSWORD unless told otherwise."""
    secrets.add(TOKEN, BAD_TOKEN, PASSWORD)  # the fixture must not log them either

    def make(**kwargs: Any) -> FakeSmtpServer:
        kwargs.setdefault("token_ok", lambda user, token: (user, token) == (USER, TOKEN))
        kwargs.setdefault("passwords", {USER: PASSWORD})
        return make_server(**kwargs)

    return make


def trusting(tls: TlsFiles) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(tls.ca_pem))


def connect(server: FakeSmtpServer, tls: TlsFiles) -> smtplib.SMTP:
    """A client that has said EHLO over TLS: STARTTLS, or implicit TLS for security="tls"."""
    client: smtplib.SMTP
    if server.security == "tls":
        client = smtplib.SMTP_SSL(server.host, server.port, context=trusting(tls), timeout=5)
    else:
        client = smtplib.SMTP(server.host, server.port, timeout=5)
        client.starttls(context=trusting(tls))
    client.ehlo("client.test")
    return client


def xoauth2(user: str, token: str, seen: list[bytes] | None = None) -> Callable[..., str]:
    """An smtplib auth object: the XOAUTH2 string, then an empty line for an error challenge."""

    def respond(challenge: bytes | None = None) -> str:
        if challenge:
            if seen is not None:
                seen.append(challenge)
            return ""
        return f"user={user}\x01auth=Bearer {token}\x01\x01"

    return respond


def oauthbearer(user: str, token: str, seen: list[bytes] | None = None) -> Callable[..., str]:
    escaped = user.replace("=", "=3D").replace(",", "=2C")

    def respond(challenge: bytes | None = None) -> str:
        if challenge:
            if seen is not None:
                seen.append(challenge)
            return "\x01"  # RFC 7628 3.2.3: the client's answer to an error challenge
        return f"n,a={escaped},\x01host=127.0.0.1\x01port=465\x01auth=Bearer {token}\x01\x01"

    return respond


def message(to: str = "oncall@example.net", subject: str = "Disk full") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = USER
    msg["To"] = to
    msg["Subject"] = subject
    msg.set_content("db-3 is at 98%\n")
    return msg
