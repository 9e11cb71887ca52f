"""SMTP delivery against a real server: TLS modes, AUTH mechanisms, reuse, outcome classes."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import redis

from tests.fake_idp import FakeIdP
from tests.leaks import SecretRegistry
from tests.smtp_server import ServerFactory, make_tls
from tests.worker.conftest import CredentialsFactory
from worker import redis_keys
from worker.credentials import Credentials
from worker.intake import Notification, build_message
from worker.transport import OutgoingMessage, SendResult
from worker.transport.smtp import ConnectionSlots, SmtpPool

# Transactions with the server offering PIPELINING (one batch) and without.
BOTH_WAYS = pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "one-by-one"])


@pytest.fixture
def pools() -> Iterator[list[SmtpPool]]:
    made: list[SmtpPool] = []
    yield made
    for pool in made:
        pool.close()


def pool_for(credentials: Credentials, pools: list[SmtpPool], **options: object) -> SmtpPool:
    pool = SmtpPool(credentials, **options)  # type: ignore[arg-type]
    pools.append(pool)
    return pool


def message(n: int = 1, **fields: object) -> OutgoingMessage:
    values: dict[str, object] = {
        "to": ("oncall@example.test",),
        "subject": f"[P1] incident {n}",
        "text": "db-01 is down",
    }
    from_name = str(fields.pop("from_name", "Example Alerts"))
    values.update(fields)
    return build_message(
        Notification(**values),  # type: ignore[arg-type]
        job_id=f"job-{n}",
        from_email="alerts@example.test",
        from_name=from_name,
    )


def slots_in_use(client: redis.Redis) -> int:
    return int(client.zcard(redis_keys.smtp_slots("p")))


def send(pool: SmtpPool, n: int = 1, **fields: object) -> SendResult:
    return pool.send("p", message(n, **fields))


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


def test_a_hundred_messages_share_one_connection(
    make_server: ServerFactory,
    make_credentials: CredentialsFactory,
    pools: list[SmtpPool],
    idp: FakeIdP,
) -> None:
    server = make_server()
    pool = pool_for(make_credentials(server), pools, max_messages_per_connection=1000)
    results = [send(pool, n) for n in range(100)]
    assert all(r.outcome.kind == "delivered" for r in results)
    assert len(server.sessions) == 1
    assert len(server.messages) == 100
    assert len(idp.requests) == 1
    assert [r.reused_connection for r in results[:2]] == [False, True]


def test_the_connection_is_replaced_after_its_message_cap(
    make_server: ServerFactory, make_credentials: CredentialsFactory, pools: list[SmtpPool]
) -> None:
    server = make_server()
    pool = pool_for(make_credentials(server), pools, max_messages_per_connection=10)
    for n in range(25):
        assert send(pool, n).outcome.kind == "delivered"
    assert len(server.sessions) == 3


def test_a_connection_dropped_while_idle_is_replaced_transparently(
    make_server: ServerFactory, make_credentials: CredentialsFactory, pools: list[SmtpPool]
) -> None:
    server = make_server()
    pool = pool_for(make_credentials(server), pools, noop_after_seconds=3600)
    assert send(pool, 1).outcome.kind == "delivered"
    server.drop_connections()
    again = send(pool, 2)
    assert again.outcome.kind == "delivered", again.outcome.summary()
    assert len(server.sessions) == 2
    assert len(server.messages) == 2


def test_a_421_on_a_reused_connection_is_replaced_transparently(
    make_server: ServerFactory, make_credentials: CredentialsFactory, pools: list[SmtpPool]
) -> None:
    server = make_server()
    pool = pool_for(make_credentials(server), pools)
    send(pool, 1)
    server.fail_next("mail", "421 4.3.2 Service not available, closing transmission channel")
    assert send(pool, 2).outcome.kind == "delivered"
    assert len(server.sessions) == 2


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
    credentials.get("p")  # cache a token, then the server stops accepting it
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


def test_utf8_display_names_and_subjects_arrive_intact(
    make_server: ServerFactory, make_credentials: CredentialsFactory, pools: list[SmtpPool]
) -> None:
    server = make_server()
    send(
        pool_for(make_credentials(server, from_name="Überwachung"), pools),
        subject="Störung: 数据库 ⚠",
    )
    received = server.messages[0].message
    assert received["Subject"] == "Störung: 数据库 ⚠"
    assert received["From"].addresses[0].display_name == "Example Alerts"


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


def test_the_connection_cap_holds_across_workers(
    make_server: ServerFactory,
    make_credentials: CredentialsFactory,
    pools: list[SmtpPool],
    redis_client: redis.Redis,
) -> None:
    server = make_server()
    credentials = make_credentials(server, max_connections=1)
    slots = ConnectionSlots(redis_client)
    other_worker = slots.try_acquire("p", 1)
    assert other_worker is not None
    assert slots.try_acquire("p", 1) is None
    busy = send(pool_for(credentials, pools, slots=slots, slot_wait_seconds=0.3))
    assert busy.busy, "nothing was tried: the job must not lose an attempt"
    blocked = busy.outcome
    assert (blocked.kind, blocked.phase) == ("transient", "connect")
    assert "in use by other workers" in blocked.text
    assert server.sessions == []
    slots.release("p", other_worker)
    assert send(pool_for(credentials, pools, slots=slots)).outcome.kind == "delivered"
    assert slots_in_use(redis_client) == 1, "the pooled connection keeps its slot"


def test_threads_share_the_pool_without_exceeding_the_cap(
    make_server: ServerFactory,
    make_credentials: CredentialsFactory,
    pools: list[SmtpPool],
    redis_client: redis.Redis,
) -> None:
    server = make_server()
    credentials = make_credentials(server, max_connections=2)
    pool = pool_for(credentials, pools, slots=ConnectionSlots(redis_client))
    results: list[SendResult] = []

    def worker(base: int) -> None:
        for n in range(10):
            results.append(send(pool, base + n))

    threads = [threading.Thread(target=worker, args=(i * 100,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(results) == 40
    assert all(r.outcome.kind == "delivered" for r in results), [
        r.outcome.summary() for r in results if r.outcome.kind != "delivered"
    ]
    assert len(server.messages) == 40
    assert len(server.sessions) <= 2


def test_an_unexpected_error_mid_send_frees_the_connection_and_its_slot(
    make_server: ServerFactory,
    make_credentials: CredentialsFactory,
    pools: list[SmtpPool],
    redis_client: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = make_server()
    slots = ConnectionSlots(redis_client)
    pool = pool_for(make_credentials(server, max_connections=1), pools, slots=slots,
                    slot_wait_seconds=0.3)  # fmt: skip
    assert send(pool, 1).outcome.kind == "delivered"

    def time_limit(self: object, message: OutgoingMessage) -> None:
        raise TimeoutError("the task's time limit struck")  # what a soft time limit does

    with monkeypatch.context() as patch:
        patch.setattr("worker.transport.smtp.session.SmtpSession.send", time_limit)
        with pytest.raises(TimeoutError):
            send(pool, 2)
    assert slots_in_use(redis_client) == 0, "the slot is released"
    assert send(pool, 3).outcome.kind == "delivered", "a new connection can be opened"
    assert len(server.sessions) == 2
