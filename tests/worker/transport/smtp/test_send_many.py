"""A run of messages over one connection; with grouping, each content goes with the next envelope.

The scripted server answers a message's content only once the next message's
MAIL, RCPT and DATA have arrived behind it, so a client that waited for each
reply would time out: the first test cannot pass without one round trip per
message. By default a content goes alone and waits for its reply, since a
server may die on what follows it (Dovecot 2.3). The others run against the
aiosmtpd server: refusals in the middle of a run, a connection lost in the
middle, and what each message's result says.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field

import redis

from tests.fakes.smtp_server import ServerFactory
from tests.support import free_port
from tests.worker.conftest import CredentialsFactory
from tests.worker.transport.smtp.sending import message, pool_for
from tests.worker.transport.smtp.test_pipelining import (
    greet,
    read_until,
    serve_one_connection,
    session,
)
from worker import redis_keys
from worker.transport.smtp import SmtpPool
from worker.transport.smtp.grouping import Grouping

GROUP_REPLIES = b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n"


@dataclass
class OneRoundTripEach:
    """Expects ``count`` one-recipient messages and answers each content with the next envelope."""

    count: int
    port: int = 0
    flights: list[bytes] = field(default_factory=list)  # what arrived before each answer
    bodies: list[bytes] = field(default_factory=list)

    def serve(self, listener: socket.socket) -> None:
        conn, _ = listener.accept()
        with conn, conn.makefile("rb") as reader:
            greet(conn, reader)
            flight = b""
            for n in range(self.count):
                flight += read_until(reader, b"DATA\r\n")
                self.flights.append(flight)
                # The previous message's "queued" only now, with this envelope's replies.
                queued = f"250 2.0.0 Ok: queued as Q{n - 1}\r\n".encode() if n else b""
                conn.sendall(queued + GROUP_REPLIES)
                flight = body = read_until(reader, b".\r\n")
                self.bodies.append(body)
            self.flights.append(flight)
            conn.sendall(f"250 2.0.0 Ok: queued as Q{self.count - 1}\r\n".encode())
            while line := reader.readline():  # QUIT
                conn.sendall(b"221 Bye\r\n" if line.startswith(b"QUIT") else b"250 Ok\r\n")


def test_each_message_after_the_first_costs_one_round_trip() -> None:
    server = serve_one_connection(OneRoundTripEach(4))
    smtp = session(server)
    try:
        results = list(smtp.send_many([message(n) for n in range(4)], group=True))
    finally:
        smtp.close()
    assert [r.kind for r in results] == ["delivered"] * 4, [r.summary() for r in results]
    assert [r.queue_id for r in results] == ["Q0", "Q1", "Q2", "Q3"]
    # 5 flights for 4 messages: the first envelope, then each content with the next envelope.
    assert len(server.flights) == 5
    for n, flight in enumerate(server.flights[1:-1], start=1):
        content, envelope = flight.split(b"\r\n.\r\n")
        assert f"[P1] incident {n - 1}".encode() in content
        assert envelope.startswith(b"MAIL FROM:<alerts@example.test>")
        assert envelope.endswith(b"DATA\r\n")
    assert b"[P1] incident 3" in server.flights[-1]
    assert smtp.messages_sent == 4


@dataclass
class OneAtATime:
    """Answers every flight at once and keeps what arrived before each content's answer."""

    count: int
    port: int = 0
    contents: list[bytes] = field(default_factory=list)

    def serve(self, listener: socket.socket) -> None:
        conn, _ = listener.accept()
        with conn, conn.makefile("rb") as reader:
            greet(conn, reader)
            for n in range(self.count):
                read_until(reader, b"DATA\r\n")
                conn.sendall(GROUP_REPLIES)
                self.contents.append(read_until(reader, b"\r\n.\r\n"))
                conn.sendall(f"250 2.0.0 Ok: queued as Q{n}\r\n".encode())
            while line := reader.readline():  # QUIT
                conn.sendall(b"221 Bye\r\n" if line.startswith(b"QUIT") else b"250 Ok\r\n")


def test_by_default_a_content_waits_for_its_reply_before_the_next_envelope() -> None:
    server = serve_one_connection(OneAtATime(3))
    smtp = session(server)
    try:
        results = list(smtp.send_many([message(n) for n in range(3)]))
    finally:
        smtp.close()
    assert [r.queue_id for r in results] == ["Q0", "Q1", "Q2"], [r.summary() for r in results]
    # Each content arrived alone: the next MAIL waited for the content's 250.
    assert len(server.contents) == 3
    assert not any(b"MAIL FROM" in content for content in server.contents)


def test_a_connection_lost_after_a_grouped_content_stops_grouping_with_that_server(
    make_server: ServerFactory,
    make_credentials: CredentialsFactory,
    pools: list[SmtpPool],
    redis_client: redis.Redis,
) -> None:
    server = make_server()
    credentials = make_credentials(server, pipeline_messages=True)
    profile = credentials.profiles.get("p")
    pool = pool_for(credentials, pools, grouping=Grouping(redis_client))
    assert pool.grouping.allowed(profile)
    server.drop_after_data(1)  # kept, then the connection closes, as Dovecot 2.3 does
    results = list(
        pool.send_many(pool.credentials.profiles.get("p"), [message(n) for n in range(4)])
    )
    assert [r.outcome.kind for r in results] == ["transient"] + ["delivered"] * 3
    assert "connection lost after DATA" in results[0].outcome.summary()
    # Every worker knows before the message is retried: another process groups no more.
    assert redis_client.exists(redis_keys.smtp_grouping_off(profile.host, profile.port))
    assert not Grouping(redis_client).allowed(profile)
    assert not pool.grouping.allowed(profile)


def test_grouping_is_opt_in_and_off_when_redis_cannot_say(
    make_server: ServerFactory, make_credentials: CredentialsFactory
) -> None:
    server = make_server()
    default = make_credentials(server).profiles.get("p")
    opted_in = make_credentials(server, pipeline_messages=True).profiles.get("p")
    assert not Grouping(None).allowed(default)
    assert Grouping(None).allowed(opted_in)
    unreachable = redis.Redis(port=free_port(), socket_connect_timeout=1)
    assert not Grouping(unreachable).allowed(opted_in)


def test_refusals_in_a_run_end_only_their_own_message(
    make_server: ServerFactory, make_credentials: CredentialsFactory, pools: list[SmtpPool]
) -> None:
    server = make_server()
    pool = pool_for(make_credentials(server), pools)
    server.fail_recipient("gone@example.test", "550 5.1.1 User unknown")
    messages = [message(n) for n in range(6)]
    messages[1] = message(1, to=("gone@example.test",))
    results = []
    for n, result in enumerate(pool.send_many(pool.credentials.profiles.get("p"), messages)):
        if n == 2:  # the next content (message 3's) is refused after its 354
            server.fail_next("data", "554 5.6.0 Message rejected as spam")
        results.append(result)
    kinds = [(r.outcome.kind, r.outcome.phase) for r in results]
    assert kinds == [
        ("delivered", "data"),
        ("permanent", "rcpt"),
        ("delivered", "data"),
        ("permanent", "data"),
        ("delivered", "data"),
        ("delivered", "data"),
    ], [r.outcome.summary() for r in results]
    assert "5.1.1" in results[1].outcome.summary()
    assert "spam" in results[3].outcome.summary()
    subjects = [m.data.split(b"Subject: ")[1].split(b"\r\n")[0] for m in server.messages]
    assert subjects == [f"[P1] incident {n}".encode() for n in (0, 2, 4, 5)]
    assert len(server.sessions) == 1
    assert [r.reused_connection for r in results[:2]] == [False, True]
    assert results[0].token_source is not None and results[1].token_source is None


def test_a_connection_lost_mid_run_is_replaced_and_the_rest_are_sent(
    make_server: ServerFactory, make_credentials: CredentialsFactory, pools: list[SmtpPool]
) -> None:
    server = make_server()
    pool = pool_for(make_credentials(server), pools)
    server.drop_after_data(1)  # the first message is kept, then the connection closes
    results = list(
        pool.send_many(pool.credentials.profiles.get("p"), [message(n) for n in range(4)])
    )
    kinds = [r.outcome.kind for r in results]
    # The first may have been delivered: its outcome says so and it is never resent silently.
    assert kinds == ["transient", "delivered", "delivered", "delivered"]
    assert "connection lost after DATA" in results[0].outcome.summary()
    assert len(server.sessions) == 2
    assert len(server.messages) == 4
    assert not any(r.busy for r in results)


def test_when_a_fresh_connection_fails_too_the_rest_are_left_untried(
    make_server: ServerFactory, make_credentials: CredentialsFactory, pools: list[SmtpPool]
) -> None:
    server = make_server()
    pool = pool_for(make_credentials(server), pools)
    closing = "421 4.3.2 Service not available, closing transmission channel"
    server.fail_next("mail", closing)  # on a new connection: not replaced
    results = list(
        pool.send_many(pool.credentials.profiles.get("p"), [message(n) for n in range(3)])
    )
    assert results[0].outcome.kind == "transient" and not results[0].busy
    assert [r.busy for r in results[1:]] == [True, True]
    assert all("not tried" in r.outcome.summary() for r in results[1:])
    assert server.messages == []


def test_a_run_stops_cleanly_when_the_caller_stops_reading(
    make_server: ServerFactory, make_credentials: CredentialsFactory, pools: list[SmtpPool]
) -> None:
    server = make_server()
    pool = pool_for(make_credentials(server), pools)
    results = pool.send_many(pool.credentials.profiles.get("p"), [message(n) for n in range(3)])
    assert next(results).outcome.kind == "delivered"
    results.close()  # the connection's state is unknown: it is closed, not pooled
    server.wait_closed()
    assert pool.send(pool.credentials.profiles.get("p"), message(9)).outcome.kind == "delivered"
    assert len(server.sessions) == 2


def test_a_server_closing_after_a_message_gets_the_rest_on_a_new_connection(
    make_server: ServerFactory, make_credentials: CredentialsFactory, pools: list[SmtpPool]
) -> None:
    server = make_server()
    pool = pool_for(make_credentials(server), pools)
    results = []
    for n, result in enumerate(
        pool.send_many(pool.credentials.profiles.get("p"), [message(n) for n in range(4)])
    ):
        if n == 0:  # message 1's content is answered 421, and the server closes
            server.fail_next("data", "421 4.3.2 Service shutting down")
        results.append(result)
    assert [r.outcome.kind for r in results] == ["delivered", "transient", "delivered", "delivered"]
    assert len(server.sessions) == 2
    assert len(server.messages) == 3
