"""Proves the FakeSmtpServer fixture with plain smtplib, so other tests can rely on it."""

from __future__ import annotations

import base64
import json
import smtplib
import ssl
from collections.abc import Callable
from email.message import EmailMessage
from typing import Any

import pytest

from tests.leaks import SecretRegistry
from tests.smtp_server import FakeSmtpServer, ServerFactory, TlsFiles

USER = "alerts@example.com"
TOKEN = "ya29.good-access-token-0123456789"
BAD_TOKEN = "ya29.expired-access-token-9876543210"
PASSWORD = "correct horse battery staple"
GMAIL_535 = (
    b"5.7.8 Username and Password not accepted. For more information,"
    b" go to https://support.google.com/mail/?p=BadCredentials"
)

MakeServer = Callable[..., FakeSmtpServer]


@pytest.fixture
def make_server(make_server: ServerFactory, secrets: SecretRegistry) -> MakeServer:
    """The suite's server factory, with this module's user, token and password."""
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


def test_auth_not_required(make_server: MakeServer, tls: TlsFiles) -> None:
    server = make_server(auth_required=False)
    with connect(server, tls) as client:
        assert client.sendmail(USER, ["a@example.net"], b"x\r\n") == {}
    assert not server.sessions[0].authenticated


def test_xoauth2_bad_token_fails_like_gmail(make_server: MakeServer, tls: TlsFiles) -> None:
    server = make_server()
    challenges: list[bytes] = []
    with connect(server, tls) as client:
        with pytest.raises(smtplib.SMTPAuthenticationError) as failed:
            client.auth("XOAUTH2", xoauth2(USER, BAD_TOKEN, challenges))
        assert (failed.value.smtp_code, failed.value.smtp_error) == (535, GMAIL_535)
        assert client.mail(USER)[0] == 530
    assert [json.loads(c) for c in challenges] == [
        {"status": "401", "schemes": "bearer", "scope": "https://mail.google.com/"}
    ]
    assert server.auth_failures == [{"mechanism": "XOAUTH2", "user": USER, "client_reply": b""}]
    assert not server.sessions[0].authenticated


def test_xoauth2_bad_token_plain_failure(make_server: MakeServer, tls: TlsFiles) -> None:
    server = make_server(gmail_style_failure=False)
    challenges: list[bytes] = []
    with (
        connect(server, tls) as client,
        pytest.raises(smtplib.SMTPAuthenticationError) as failed,
    ):
        client.auth("XOAUTH2", xoauth2(USER, BAD_TOKEN, challenges))
    assert failed.value.smtp_code == 535
    assert failed.value.smtp_error == b"5.7.3 Authentication unsuccessful"
    assert challenges == []
    assert server.auth_failures == [{"mechanism": "XOAUTH2", "user": USER, "client_reply": None}]


def test_xoauth2_without_initial_response(make_server: MakeServer, tls: TlsFiles) -> None:
    server = make_server()
    with connect(server, tls) as client:
        code, _ = client.auth("XOAUTH2", xoauth2(USER, TOKEN), initial_response_ok=False)
    assert code == 235
    assert server.sessions[0].initial_response is False


def test_oauthbearer(make_server: MakeServer, tls: TlsFiles) -> None:
    odd_user = "ops,team=1@example.com"  # exercises the =2C / =3D escapes
    server = make_server(token_ok=lambda user, token: (user, token) == (odd_user, TOKEN))
    challenges: list[bytes] = []
    with connect(server, tls) as client:
        with pytest.raises(smtplib.SMTPAuthenticationError) as failed:
            client.auth("OAUTHBEARER", oauthbearer(odd_user, BAD_TOKEN, challenges))
        assert failed.value.smtp_code == 535
        assert failed.value.smtp_error == b"5.7.8 Authentication credentials invalid"
        assert client.auth("OAUTHBEARER", oauthbearer(odd_user, TOKEN))[0] == 235
    assert json.loads(challenges[0])["status"] == "invalid_token"
    assert server.auth_failures == [
        {"mechanism": "OAUTHBEARER", "user": odd_user, "client_reply": b"\x01"}
    ]
    session = server.sessions[0]
    assert (session.auth_mechanism, session.auth_user, session.authenticated) == (
        "OAUTHBEARER",
        odd_user,
        True,
    )


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_password_mechanisms(make_server: MakeServer, tls: TlsFiles, mechanism: str) -> None:
    server = make_server(mechanisms=(mechanism,))
    with connect(server, tls) as client:
        with pytest.raises(smtplib.SMTPAuthenticationError) as failed:
            client.login(USER, "wrong password")
        assert failed.value.smtp_code == 535
        assert client.login(USER, PASSWORD)[0] == 235
        client.send_message(message())
    assert server.auth_failures == [{"mechanism": mechanism, "user": USER, "client_reply": None}]
    session = server.sessions[0]
    assert (session.auth_mechanism, session.auth_user, session.authenticated) == (
        mechanism,
        USER,
        True,
    )
    assert len(server.messages) == 1


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


def test_max_initial_response(make_server: MakeServer, tls: TlsFiles) -> None:
    server = make_server(max_initial_response=1000)
    long_token = TOKEN + "x" * 2000
    server.token_ok = lambda user, token: token == long_token
    with connect(server, tls) as client:
        with pytest.raises(smtplib.SMTPAuthenticationError) as failed:
            client.auth("XOAUTH2", xoauth2(USER, long_token))
        assert (failed.value.smtp_code, failed.value.smtp_error) == (500, b"5.5.6 Line too long")
        assert not server.sessions[0].authenticated
        code, _ = client.auth("XOAUTH2", xoauth2(USER, long_token), initial_response_ok=False)
        assert code == 235
    assert server.sessions[0].initial_response is False
    assert server.auth_failures == []


def test_long_auth_lines_accepted_by_default(make_server: MakeServer, tls: TlsFiles) -> None:
    server = make_server()
    # The longest XOAUTH2 initial response whose "AUTH XOAUTH2 <b64>" line fits in 8 KB.
    long_token = "t" * (8176 // 4 * 3 - len(xoauth2(USER, "")()))
    line = "AUTH XOAUTH2 " + base64.b64encode(xoauth2(USER, long_token)().encode()).decode()
    assert len(line) == 8189
    server.token_ok = lambda user, token: token == long_token
    with connect(server, tls) as client:
        assert client.auth("XOAUTH2", xoauth2(USER, long_token))[0] == 235


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


def test_scripting_is_validated(tls: TlsFiles) -> None:
    server = FakeSmtpServer(tls=tls)
    with pytest.raises(ValueError, match="phase"):
        server.fail_next("helo", "451 4.3.0 later")
    with pytest.raises(ValueError, match="reply"):
        server.fail_next("mail", "250 OK")
    with pytest.raises(ValueError, match="needs tls"):
        FakeSmtpServer(tls=None)
