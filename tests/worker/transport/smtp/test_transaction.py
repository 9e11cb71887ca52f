"""One SMTP transaction against a real server: outcome classes by phase, headers, envelopes."""

from __future__ import annotations

import pytest

from tests.fakes.smtp_server import ServerFactory
from tests.worker.conftest import CredentialsFactory
from tests.worker.transport.smtp.sending import pool_for, send
from worker.transport.smtp import SmtpPool

# Transactions with the server offering PIPELINING (one batch) and without.
BOTH_WAYS = pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "one-by-one"])


@BOTH_WAYS
def test_451_at_rcpt_is_transient(
    pipelining: bool,
    make_server: ServerFactory,
    make_credentials: CredentialsFactory,
    pools: list[SmtpPool],
) -> None:
    server = make_server(pipelining=pipelining)
    server.fail_next("rcpt", "451 4.3.0 Try again later")
    result = send(pool_for(make_credentials(server), pools)).outcome
    assert (result.kind, result.phase, result.code, result.enhanced_code) == (
        "transient",
        "rcpt",
        451,
        "4.3.0",
    )
    assert server.messages == []


@BOTH_WAYS
def test_one_refused_recipient_of_two(
    pipelining: bool,
    make_server: ServerFactory,
    make_credentials: CredentialsFactory,
    pools: list[SmtpPool],
) -> None:
    server = make_server(pipelining=pipelining)
    server.fail_recipient("gone@example.test", "550 5.1.1 User unknown")
    result = send(
        pool_for(make_credentials(server), pools), to=("oncall@example.test", "gone@example.test")
    ).outcome
    assert result.kind == "delivered"
    refused = {r.address: r for r in result.recipients if not r.accepted}
    assert set(refused) == {"gone@example.test"}
    assert (refused["gone@example.test"].kind, refused["gone@example.test"].code) == (
        "permanent",
        550,
    )
    (received,) = server.messages
    assert received.rcpt_tos == ["oncall@example.test"]


@BOTH_WAYS
def test_552_at_data_is_permanent(
    pipelining: bool,
    make_server: ServerFactory,
    make_credentials: CredentialsFactory,
    pools: list[SmtpPool],
) -> None:
    server = make_server(pipelining=pipelining)
    server.fail_next("data", "552 5.3.4 Message size exceeds fixed maximum message size")
    result = send(pool_for(make_credentials(server), pools)).outcome
    assert (result.kind, result.phase, result.code, result.enhanced_code) == (
        "permanent",
        "data",
        552,
        "5.3.4",
    )
    assert "too large" in (result.hint or "")


@BOTH_WAYS
def test_a_connection_lost_after_data_is_transient_and_not_resent_by_the_pool(
    pipelining: bool,
    make_server: ServerFactory,
    make_credentials: CredentialsFactory,
    pools: list[SmtpPool],
) -> None:
    server = make_server(pipelining=pipelining)
    server.drop_after_data()
    result = send(pool_for(make_credentials(server), pools)).outcome
    assert (result.kind, result.phase, result.code) == ("transient", "data", None)
    assert len(server.messages) == 1, "the server got it once; no silent resend"


def test_utf8_display_names_and_subjects_arrive_intact(
    make_server: ServerFactory, make_credentials: CredentialsFactory, pools: list[SmtpPool]
) -> None:
    server = make_server()
    # The pool sends the message as built: the name is build_message's from_name (which
    # delivery takes from the profile), so it is given here, not to the credentials.
    send(
        pool_for(make_credentials(server), pools),
        subject="Störung: 数据库 ⚠",
        from_name="Überwachung Ålert",
    )
    (received,) = server.messages
    assert received.data.isascii(), "encoded words: a UTF-8 name needs no SMTPUTF8"
    assert "SMTPUTF8" not in received.mail_options
    assert received.message["Subject"] == "Störung: 数据库 ⚠"
    assert received.message["From"].addresses[0].display_name == "Überwachung Ålert"
    assert received.message["From"].addresses[0].addr_spec == "alerts@example.test"


def test_bcc_goes_to_the_envelope_only(
    make_server: ServerFactory, make_credentials: CredentialsFactory, pools: list[SmtpPool]
) -> None:
    server = make_server()
    send(pool_for(make_credentials(server), pools), bcc=("audit@example.test",))
    (received,) = server.messages
    assert "audit@example.test" in received.rcpt_tos
    assert b"audit@example.test" not in received.data


@pytest.mark.parametrize("offered", [True, False])
def test_internationalised_addresses_use_smtputf8_or_fail_clearly(
    offered: bool,
    make_server: ServerFactory,
    make_credentials: CredentialsFactory,
    pools: list[SmtpPool],
) -> None:
    server = make_server(smtputf8=offered)
    result = send(pool_for(make_credentials(server), pools), to=("用户@例子.广告",)).outcome
    if offered:
        assert result.kind == "delivered"
        assert "SMTPUTF8" in server.messages[0].mail_options
    else:
        assert (result.kind, result.phase) == ("permanent", "mail")
        assert "SMTPUTF8" in result.text
