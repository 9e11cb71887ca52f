"""The SMTP pool against a real server: connection reuse, dead connections, caps, threads."""

from __future__ import annotations

import threading

import pytest
import redis

from tests.fakes.idp import FakeIdP
from tests.fakes.smtp_server import ServerFactory
from tests.worker.conftest import CredentialsFactory
from tests.worker.transport.smtp.sending import message, pool_for, send
from worker import redis_keys
from worker.transport import OutgoingMessage, SendResult
from worker.transport.slots import ConnectionSlots
from worker.transport.smtp import SmtpPool


def slots_in_use(client: redis.Redis) -> int:
    return int(client.zcard(redis_keys.smtp_slots("p")))


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


def test_a_connection_made_for_an_older_version_of_the_profile_is_not_reused(
    make_server: ServerFactory,
    make_credentials: CredentialsFactory,
    pools: list[SmtpPool],
) -> None:
    old_server, new_server = make_server(), make_server()
    credentials = make_credentials(old_server)
    pool = pool_for(credentials, pools)
    before = credentials.profiles.get("p")
    assert pool.send(before, message(1)).outcome.kind == "delivered"
    # The profiles file reloaded: the same name, another server.
    after = before.model_copy(update={"port": new_server.port})
    result = pool.send(after, message(2))
    assert result.outcome.kind == "delivered"
    assert not result.reused_connection
    assert [len(old_server.messages), len(new_server.messages)] == [1, 1]
    old_server.wait_closed()  # the old connection is closed, not kept
