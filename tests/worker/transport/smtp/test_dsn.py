"""DSN requests (RFC 3461): the job id as ENVID, failures and delays reported, headers only."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.fakes.smtp_server import ServerFactory
from tests.worker.conftest import CredentialsFactory
from tests.worker.transport.smtp.sending import pool_for, send
from tests.worker.transport.smtp.test_pipelining import message, session, start
from worker.transport.smtp import SmtpPool
from worker.transport.smtp.transaction import xtext

BOTH_WAYS = pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "one-by-one"])


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        ("0123abcdef", "0123abcdef"),
        ("a+b=c", "a+2Bb+3Dc"),
        ("with space", "with+20space"),
        ("é", "+C3+A9"),
        ("tab\there", "tab+09here"),
    ],
)
def test_xtext_encodes_plus_equals_and_what_is_not_printable_ascii(
    value: str, encoded: str
) -> None:
    assert xtext(value) == encoded


@BOTH_WAYS
def test_a_server_offering_dsn_gets_the_job_id_as_envid_and_notify_on_every_recipient(
    pipelining: bool,
    make_server: ServerFactory,
    make_credentials: CredentialsFactory,
    pools: list[SmtpPool],
) -> None:
    server = make_server(pipelining=pipelining, dsn=True)
    to = ("oncall@example.test", "backup@example.test")
    result = send(pool_for(make_credentials(server), pools), 7, to=to).outcome
    assert result.kind == "delivered", result
    (received,) = server.messages
    assert "RET=HDRS" in received.mail_options
    assert "ENVID=job-7" in received.mail_options
    assert received.rcpt_options == {
        address: ["NOTIFY=FAILURE,DELAY", f"ORCPT=rfc822;{address}"] for address in to
    }


@BOTH_WAYS
def test_a_server_without_dsn_gets_no_dsn_parameters(
    pipelining: bool,
    make_server: ServerFactory,
    make_credentials: CredentialsFactory,
    pools: list[SmtpPool],
) -> None:
    server = make_server(pipelining=pipelining, dsn=False)
    assert send(pool_for(make_credentials(server), pools)).outcome.kind == "delivered"
    (received,) = server.messages
    assert not [o for o in received.mail_options if o.startswith(("RET=", "ENVID="))]
    assert received.rcpt_options == {"oncall@example.test": []}


def test_a_profile_with_dsn_off_asks_for_none(
    make_server: ServerFactory,
    make_credentials: CredentialsFactory,
    pools: list[SmtpPool],
) -> None:
    server = make_server(dsn=True)
    credentials = make_credentials(server, dsn=False)
    assert send(pool_for(credentials, pools)).outcome.kind == "delivered"
    (received,) = server.messages
    assert not [o for o in received.mail_options if o.startswith(("RET=", "ENVID="))]
    assert received.rcpt_options == {"oncall@example.test": []}


def test_the_dsn_parameters_go_out_in_the_pipelined_group() -> None:
    ehlo = b"250-scripted\r\n250-PIPELINING\r\n250 DSN\r\n"
    server = start([b"250 2.1.0 Ok\r\n", b"250 2.1.5 Ok\r\n", b"354 Go\r\n"], ehlo)
    smtp = session(server)
    smtp.send(replace(message("a+b@example.test"), envid="job 1"))
    smtp.close()
    assert server.batches == [
        b"MAIL FROM:<alerts@example.test> RET=HDRS ENVID=job+201\r\n"
        b"RCPT TO:<a+b@example.test> NOTIFY=FAILURE,DELAY ORCPT=rfc822;a+2Bb@example.test\r\n"
        b"DATA\r\n"
    ]
