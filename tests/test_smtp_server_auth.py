"""Proves the FakeSmtpServer's AUTH with plain smtplib: bearer tokens, passwords, long lines."""

from __future__ import annotations

import base64
import json
import smtplib

import pytest

from tests.fakes.smtp_client import (
    BAD_TOKEN,
    PASSWORD,
    TOKEN,
    USER,
    MakeServer,
    connect,
    message,
    oauthbearer,
    with_test_credentials,
    xoauth2,
)
from tests.fakes.smtp_server import ServerFactory, TlsFiles
from tests.leaks import SecretRegistry

GMAIL_535 = (
    b"5.7.8 Username and Password not accepted. For more information,"
    b" go to https://support.google.com/mail/?p=BadCredentials"
)


@pytest.fixture
def make_server(make_server: ServerFactory, secrets: SecretRegistry) -> MakeServer:
    """The suite's server factory, with this module's user, token and password."""
    return with_test_credentials(make_server, secrets)


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
