"""The SMTP session through the pool's send: TLS modes, certificates, AUTH mechanisms, tokens."""

from __future__ import annotations

import pytest

from tests.fakes.idp import FakeIdP
from tests.fakes.smtp_server import ServerFactory, make_tls
from tests.leaks import SecretRegistry
from tests.worker.conftest import CredentialsFactory
from tests.worker.transport.smtp.sending import pool_for, send
from worker.transport.smtp import SmtpPool


@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_xoauth2_over_each_tls_mode(
    security: str,
    make_server: ServerFactory,
    make_credentials: CredentialsFactory,
    pools: list[SmtpPool],
    idp: FakeIdP,
) -> None:
    server = make_server(security=security)
    delivery = send(pool_for(make_credentials(server, security=security), pools))
    assert delivery.outcome.kind == "delivered", delivery.outcome.summary()
    assert delivery.outcome.code == 250
    assert delivery.token_source == "fresh"
    (session,) = server.sessions
    assert session.tls
    assert (session.auth_mechanism, session.auth_user) == ("XOAUTH2", "alerts@example.test")
    (received,) = server.messages
    assert received.rcpt_tos == ["oncall@example.test"]
    assert received.message["Message-ID"] == "<job-1@example.test>"
    assert received.message["Subject"] == "[P1] incident 1"


def test_no_tls_on_loopback_when_the_profile_allows_plaintext(
    make_server: ServerFactory, make_credentials: CredentialsFactory, pools: list[SmtpPool]
) -> None:
    server = make_server(security="none", tls=None)
    credentials = make_credentials(server, security="none", allow_plaintext_auth=True)
    assert send(pool_for(credentials, pools)).outcome.kind == "delivered"
    assert not server.sessions[0].tls


def test_credentials_are_never_sent_unencrypted_otherwise(
    make_server: ServerFactory, make_credentials: CredentialsFactory, pools: list[SmtpPool]
) -> None:
    server = make_server(security="none", tls=None)
    credentials = make_credentials(server, security="none", allow_plaintext_auth=True)
    profile = credentials.profiles.get("p")
    # A profile object that slipped past the loader's check still may not send.
    credentials.profiles.by_name["p"] = profile.model_copy(update={"allow_plaintext_auth": False})  # type: ignore[index]
    delivery = send(pool_for(credentials, pools))
    assert delivery.outcome.kind == "permanent"
    assert delivery.outcome.phase == "auth"
    assert "unencrypted" in delivery.outcome.text
    assert server.sessions[0].auth_mechanism is None
    assert server.auth_failures == []


def test_a_certificate_for_another_host_is_refused(
    tmp_path_factory: pytest.TempPathFactory,
    make_server: ServerFactory,
    make_credentials: CredentialsFactory,
    pools: list[SmtpPool],
) -> None:
    other = make_tls(tmp_path_factory.mktemp("other"), identities=("mail.example.org",))
    server = make_server(tls=other)
    delivery = send(pool_for(make_credentials(server, ca_file=str(other.ca_pem)), pools))
    assert delivery.outcome.kind == "permanent"
    assert delivery.outcome.phase == "tls"
    assert "not trusted" in delivery.outcome.text
    assert "ca_file" in (delivery.outcome.hint or "")


def test_an_untrusted_ca_is_refused(
    make_server: ServerFactory, make_credentials: CredentialsFactory, pools: list[SmtpPool]
) -> None:
    server = make_server()
    delivery = send(pool_for(make_credentials(server, ca_file=None), pools))
    assert (delivery.outcome.kind, delivery.outcome.phase) == ("permanent", "tls")
    assert server.sessions[0].auth_mechanism is None


def test_oauthbearer_when_the_profile_asks(
    make_server: ServerFactory, make_credentials: CredentialsFactory, pools: list[SmtpPool]
) -> None:
    server = make_server()
    assert send(pool_for(make_credentials(server, sasl="oauthbearer"), pools)).outcome.kind == (
        "delivered"
    )
    assert server.sessions[0].auth_mechanism == "OAUTHBEARER"


def test_oauthbearer_when_it_is_all_the_server_offers(
    make_server: ServerFactory, make_credentials: CredentialsFactory, pools: list[SmtpPool]
) -> None:
    server = make_server(mechanisms=("OAUTHBEARER", "PLAIN"))
    assert send(pool_for(make_credentials(server), pools)).outcome.kind == "delivered"
    assert server.sessions[0].auth_mechanism == "OAUTHBEARER"


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_password_profiles(
    mechanism: str,
    make_server: ServerFactory,
    make_credentials: CredentialsFactory,
    pools: list[SmtpPool],
) -> None:
    server = make_server(mechanisms=(mechanism,), passwords={"relay-user": "relay-pass-123"})
    credentials = make_credentials(
        server, auth="password", username="relay-user", password="relay-pass-123"
    )
    delivery = send(pool_for(credentials, pools))
    assert delivery.outcome.kind == "delivered"
    assert delivery.token_source is None
    assert (server.sessions[0].auth_mechanism, server.sessions[0].auth_user) == (
        mechanism,
        "relay-user",
    )


def test_a_wrong_password_is_permanent_and_tried_once(
    make_server: ServerFactory, make_credentials: CredentialsFactory, pools: list[SmtpPool]
) -> None:
    # No fresh credential exists for a password, and retries lock accounts.
    server = make_server(mechanisms=("PLAIN",), passwords={"relay-user": "right-password"})
    credentials = make_credentials(
        server, auth="password", username="relay-user", password="wrong-password"
    )
    delivery = send(pool_for(credentials, pools))
    assert (delivery.outcome.kind, delivery.outcome.code) == ("permanent", 535)
    assert len(server.auth_failures) == 1


def test_a_non_ascii_password_fails_without_showing_it(
    make_server: ServerFactory,
    make_credentials: CredentialsFactory,
    pools: list[SmtpPool],
    secrets: SecretRegistry,
) -> None:
    server = make_server(mechanisms=("PLAIN",), passwords={"relay-user": "Pässwort-geheim"})
    secrets.add("Pässwort-geheim")
    credentials = make_credentials(
        server, auth="password", username="relay-user", password="Pässwort-geheim"
    )
    result = send(pool_for(credentials, pools)).outcome
    assert (result.kind, result.phase) == ("permanent", "auth")
    assert "not ASCII" in result.text
    secrets.assert_absent(result.summary(), repr(result))


def test_a_rejected_token_is_dropped_and_one_fresh_token_tried(
    make_server: ServerFactory,
    make_credentials: CredentialsFactory,
    pools: list[SmtpPool],
    idp: FakeIdP,
) -> None:
    revoked: set[str] = set()
    server = make_server(
        token_ok=lambda user, token: token in idp.issued_access_tokens and token not in revoked
    )
    credentials = make_credentials(server)
    pool = pool_for(credentials, pools)
    credentials.get(
        credentials.profiles.get("p")
    )  # cache a token, then the server stops accepting it
    revoked.update(idp.issued_access_tokens)
    delivery = send(pool)
    assert delivery.outcome.kind == "delivered"
    assert delivery.token_source == "fresh"
    assert len(idp.requests) == 2
    (failure,) = server.auth_failures
    assert failure["client_reply"] == b"", "XOAUTH2 answers the 334 with an empty line"


def test_a_token_rejected_twice_is_auth_rejected_with_the_servers_reason(
    make_server: ServerFactory,
    make_credentials: CredentialsFactory,
    pools: list[SmtpPool],
    idp: FakeIdP,
) -> None:
    server = make_server(token_ok=lambda user, token: False)
    result = send(pool_for(make_credentials(server), pools)).outcome
    assert (result.kind, result.phase, result.code, result.enhanced_code) == (
        "auth_rejected",
        "auth",
        535,
        "5.7.8",
    )
    assert "'status': '401'" in result.text, "Gmail's JSON from the 334 is kept"
    assert len(idp.requests) == 2
    assert len(server.auth_failures) == 2


def test_a_server_that_refuses_long_auth_lines_gets_the_response_after_334(
    make_server: ServerFactory, make_credentials: CredentialsFactory, pools: list[SmtpPool]
) -> None:
    server = make_server(max_initial_response=60)
    assert send(pool_for(make_credentials(server), pools)).outcome.kind == "delivered"
    assert server.sessions[0].initial_response is False
