"""What the fake SMTP server records: one SessionRecord per connection, each message received."""

from __future__ import annotations

import email
import email.policy
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

__all__ = ["ReceivedMessage", "SessionRecord"]


@dataclass
class ReceivedMessage:
    session: int  # index into FakeSmtpServer.sessions
    mail_from: str
    rcpt_tos: list[str]  # only the accepted recipients
    data: bytes  # raw message bytes as received (dot-unstuffed)
    mail_options: list[str]  # e.g. ["SIZE=312", "SMTPUTF8", "BODY=8BITMIME"]
    # Each accepted recipient's RCPT parameters, e.g. ["NOTIFY=FAILURE,DELAY"]
    rcpt_options: dict[str, list[str]] = field(default_factory=dict)

    @property
    def message(self) -> EmailMessage:
        parsed = email.message_from_bytes(self.data, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class SessionRecord:
    peer: tuple[Any, ...]
    tls: bool = False  # STARTTLS done, or implicit TLS
    ehlo: str | None = None
    auth_mechanism: str | None = None  # of the latest AUTH command
    auth_user: str | None = None  # user= (XOAUTH2), a= (OAUTHBEARER), login (PLAIN/LOGIN)
    authenticated: bool = False
    initial_response: bool | None = None  # True if the SASL response came on the AUTH line
    messages: int = 0
    quit: bool = False  # the client said QUIT before it closed
    closed: bool = False
