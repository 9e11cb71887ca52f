"""Proves the FakeSmtpServer fixture with plain smtplib, so other tests can rely on it.

Here: delivery and what it records, TLS (STARTTLS, implicit, certificates), restarts.
AUTH is proved in test_smtp_server_auth.py, scripted failures in test_smtp_server_scripting.py.
"""

from __future__ import annotations

import smtplib
import ssl

import pytest

from tests.fakes.smtp_client import (
    TOKEN,
    USER,
    MakeServer,
    connect,
    message,
    trusting,
    with_test_credentials,
    xoauth2,
)
from tests.fakes.smtp_server import ServerFactory, TlsFiles
from tests.leaks import SecretRegistry


@pytest.fixture
def make_server(make_server: ServerFactory, secrets: SecretRegistry) -> MakeServer:
    """The suite's server factory, with this module's user, token and password."""
    return with_test_credentials(make_server, secrets)


def test_starttls_xoauth2_delivers_and_records(make_server: MakeServer, tls: TlsFiles) -> None:
    server = make_server()
    with connect(server, tls) as client:
        assert client.auth("XOAUTH2", xoauth2(USER, TOKEN)) == (235, b"2.7.0 Accepted")
        client.send_message(message())
    server.wait_closed()

    (received,) = server.messages
    assert received.session == 0
    assert received.mail_from == USER
    assert received.rcpt_tos == ["oncall@example.net"]
    assert received.message["Subject"] == "Disk full"
    assert received.message.get_content().splitlines() == ["db-3 is at 98%"]
    assert received.data.startswith(b"From: alerts@example.com\r\n")
    (session,) = server.sessions
    assert session.peer[0] == "127.0.0.1"
    assert session.tls
    assert session.ehlo == "client.test"
    assert (session.auth_mechanism, session.auth_user) == ("XOAUTH2", USER)
    assert session.authenticated
    assert session.initial_response is True
    assert session.messages == 1
    assert session.closed
    assert server.auth_failures == []


def test_implicit_tls(make_server: MakeServer, tls: TlsFiles) -> None:
    server = make_server(security="tls")
    with smtplib.SMTP_SSL(server.host, server.port, context=trusting(tls), timeout=5) as client:
        client.ehlo("client.test")
        assert not client.has_extn("starttls")
        assert client.has_extn("auth")
        client.auth("XOAUTH2", xoauth2(USER, TOKEN))
        client.sendmail(USER, ["oncall@example.net"], b"Subject: hi\r\n\r\nbody\r\n")
    assert server.sessions[0].tls
    assert server.messages[0].data == b"Subject: hi\r\n\r\nbody\r\n"


def test_certificate_is_checked_with_implicit_tls(make_server: MakeServer) -> None:
    server = make_server(security="tls")
    default_trust = ssl.create_default_context()  # does not know the test CA
    with pytest.raises(ssl.SSLCertVerificationError):
        smtplib.SMTP_SSL(server.host, server.port, context=default_trust, timeout=5)
    assert server.sessions == []  # the handshake failed: no SMTP session began


def test_certificate_is_checked_with_starttls(make_server: MakeServer) -> None:
    server = make_server()
    default_trust = ssl.create_default_context()
    with (
        smtplib.SMTP(server.host, server.port, timeout=5) as client,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        client.starttls(context=default_trust)
    server.wait_closed()
    assert not server.sessions[0].tls


def test_auth_offered_only_after_starttls(make_server: MakeServer, tls: TlsFiles) -> None:
    server = make_server()
    with smtplib.SMTP(server.host, server.port, timeout=5) as client:
        client.ehlo("client.test")
        assert client.has_extn("starttls")
        assert not client.has_extn("auth")
        assert client.docmd("AUTH", "PLAIN AGFsZXJ0cwBwdw==")[0] == 530
        assert client.mail(USER) == (530, b"Must issue a STARTTLS command first")
        client.starttls(context=trusting(tls))
        client.ehlo("client.test")
        assert client.esmtp_features["auth"] == " LOGIN OAUTHBEARER PLAIN XOAUTH2"
        assert client.mail(USER) == (530, b"5.7.0 Authentication required")


def test_plain_connection_offers_auth_in_clear(make_server: MakeServer) -> None:
    server = make_server(tls=None, security="none", mechanisms=("XOAUTH2",))
    with smtplib.SMTP(server.host, server.port, timeout=5) as client:
        client.ehlo("client.test")
        assert not client.has_extn("starttls")
        assert client.esmtp_features["auth"] == " XOAUTH2"
        client.auth("XOAUTH2", xoauth2(USER, TOKEN))
    assert not server.sessions[0].tls
    assert server.sessions[0].authenticated


def test_no_mechanisms_offers_no_auth_as_a_relay_target(make_server: MakeServer) -> None:
    server = make_server(tls=None, security="none", mechanisms=(), auth_required=False)
    with smtplib.SMTP(server.host, server.port, timeout=5) as client:
        client.ehlo("client.test")
        assert not client.has_extn("auth")
        assert client.sendmail(USER, ["a@example.net"], b"x\r\n") == {}
    assert len(server.messages) == 1


def test_auth_not_required(make_server: MakeServer, tls: TlsFiles) -> None:
    server = make_server(auth_required=False)
    with connect(server, tls) as client:
        assert client.sendmail(USER, ["a@example.net"], b"x\r\n") == {}
    assert not server.sessions[0].authenticated


def test_many_messages_on_one_connection(make_server: MakeServer, tls: TlsFiles) -> None:
    server = make_server()
    with connect(server, tls) as client:
        client.auth("XOAUTH2", xoauth2(USER, TOKEN))
        for n in range(100):
            client.send_message(message(subject=f"alert {n}"))
            assert client.rset()[0] == 250
            assert client.noop()[0] == 250
    server.wait_closed()
    assert [m.message["Subject"] for m in server.messages] == [f"alert {n}" for n in range(100)]
    assert {m.session for m in server.messages} == {0}
    assert len(server.sessions) == 1
    assert server.sessions[0].messages == 100


@pytest.mark.parametrize("smtputf8", [True, False])
def test_smtputf8(make_server: MakeServer, tls: TlsFiles, smtputf8: bool) -> None:
    server = make_server(smtputf8=smtputf8)
    with connect(server, tls) as client:
        assert client.has_extn("smtputf8") is smtputf8
        client.auth("XOAUTH2", xoauth2(USER, TOKEN))
        if not smtputf8:
            with pytest.raises(smtplib.SMTPNotSupportedError):
                client.send_message(message(to="bereitschaft@bücher.example"))
            return
        client.send_message(message(to="bereitschaft@bücher.example"))
    (received,) = server.messages
    assert received.rcpt_tos == ["bereitschaft@bücher.example"]
    assert {"SMTPUTF8", "BODY=8BITMIME"} <= set(received.mail_options)


def test_restart_keeps_port_and_records(make_server: MakeServer, tls: TlsFiles) -> None:
    server = make_server()
    port = server.port
    server.stop()
    server.start()
    assert server.port == port
    with connect(server, tls) as client:
        assert client.noop()[0] == 250
    assert len(server.sessions) == 1
