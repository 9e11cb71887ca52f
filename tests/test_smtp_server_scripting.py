"""Proves the FakeSmtpServer's script with plain smtplib: refusals, drops, 421, validation."""

from __future__ import annotations

import smtplib

import pytest

from tests.fakes.smtp_client import (
    TOKEN,
    USER,
    MakeServer,
    connect,
    message,
    with_test_credentials,
    xoauth2,
)
from tests.fakes.smtp_server import FakeSmtpServer, ServerFactory, TlsFiles
from tests.leaks import SecretRegistry


@pytest.fixture
def make_server(make_server: ServerFactory, secrets: SecretRegistry) -> MakeServer:
    """The suite's server factory, with this module's user, token and password."""
    return with_test_credentials(make_server, secrets)


@pytest.mark.parametrize(
    ("phase", "reply", "error"),
    [
        ("mail", "451 4.3.0 Try again later", smtplib.SMTPSenderRefused),
        ("rcpt", "550 5.1.1 No such user", smtplib.SMTPRecipientsRefused),
        ("data", "552 5.3.4 Message size exceeds fixed limit", smtplib.SMTPDataError),
    ],
)
def test_fail_next(
    make_server: MakeServer, tls: TlsFiles, phase: str, reply: str, error: type[Exception]
) -> None:
    server = make_server()
    server.fail_next(phase, reply)
    with connect(server, tls) as client:
        client.auth("XOAUTH2", xoauth2(USER, TOKEN))
        with pytest.raises(error) as failed:
            client.send_message(message())
        code, text = reply.split(" ", 1)
        assert str(code) in str(failed.value) and text in str(failed.value)
        client.rset()
        client.send_message(message(subject="second try"))  # the failure was used up
    assert [m.message["Subject"] for m in server.messages] == ["second try"]


def test_fail_next_auth_and_count(make_server: MakeServer, tls: TlsFiles) -> None:
    server = make_server()
    server.fail_next("auth", "454 4.7.0 Temporary authentication failure", count=2)
    with connect(server, tls) as client:
        for _ in range(2):
            with pytest.raises(smtplib.SMTPAuthenticationError) as failed:
                client.auth("XOAUTH2", xoauth2(USER, TOKEN))
            assert failed.value.smtp_code == 454
        assert client.auth("XOAUTH2", xoauth2(USER, TOKEN))[0] == 235


def test_fail_recipient_delivers_to_the_others(make_server: MakeServer, tls: TlsFiles) -> None:
    server = make_server()
    server.fail_recipient("gone@example.net", "550 5.1.1 User unknown")
    with connect(server, tls) as client:
        client.auth("XOAUTH2", xoauth2(USER, TOKEN))
        for _ in range(2):  # persistent, until reset_script()
            refused = client.sendmail(USER, ["gone@example.net", "ok@example.net"], b"x\r\n")
            assert refused == {"gone@example.net": (550, b"5.1.1 User unknown")}
        server.reset_script()
        assert client.sendmail(USER, ["gone@example.net"], b"x\r\n") == {}
    assert [m.rcpt_tos for m in server.messages] == [
        ["ok@example.net"],
        ["ok@example.net"],
        ["gone@example.net"],
    ]


@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_drop_after_data(make_server: MakeServer, tls: TlsFiles, security: str) -> None:
    server = make_server(security=security)
    server.drop_after_data()
    with connect(server, tls) as client:
        client.auth("XOAUTH2", xoauth2(USER, TOKEN))
        with pytest.raises(smtplib.SMTPServerDisconnected):
            client.send_message(message())
    server.wait_closed()
    assert len(server.messages) == 1  # the server got it: a retry would make a duplicate
    assert server.sessions[0].messages == 1


def test_drop_connections(make_server: MakeServer, tls: TlsFiles) -> None:
    server = make_server()
    with connect(server, tls) as client:
        client.auth("XOAUTH2", xoauth2(USER, TOKEN))
        server.drop_connections()
        assert server.sessions[0].closed  # gone when drop_connections() returns
        with pytest.raises(smtplib.SMTPServerDisconnected):
            client.noop()
    with connect(server, tls) as client:  # the server itself still answers
        assert client.noop()[0] == 250
    assert len(server.sessions) == 2


def test_421_closes_the_connection(make_server: MakeServer, tls: TlsFiles) -> None:
    server = make_server()
    reply = "421 4.3.2 Service not available, closing transmission channel"
    server.fail_next("mail", reply)
    with connect(server, tls) as client:
        client.auth("XOAUTH2", xoauth2(USER, TOKEN))
        assert client.docmd("MAIL", f"FROM:<{USER}>") == (421, reply[4:].encode())
        with pytest.raises(smtplib.SMTPServerDisconnected):
            client.noop()
    server.wait_closed()
    assert server.sessions[0].closed


def test_scripting_is_validated(tls: TlsFiles) -> None:
    server = FakeSmtpServer(tls=tls)
    with pytest.raises(ValueError, match="phase"):
        server.fail_next("helo", "451 4.3.0 later")
    with pytest.raises(ValueError, match="reply"):
        server.fail_next("mail", "250 OK")
    with pytest.raises(ValueError, match="needs tls"):
        FakeSmtpServer(tls=None)
