"""The broker's errors: each foreign type a broker raises becomes ours; a bug goes up as it is.

The missing-queue answers are made by the real transports (kombu's memory
and Redis transports, RabbitMQ in a vhost of the test's own), so a change
in what they raise shows here rather than as a queue depth of "unknown".
"""

from __future__ import annotations

import amqp.exceptions
import kombu.exceptions
import pytest
import redis.exceptions
from amqp.spec import Basic, Queue
from celery import Celery
from kombu import Connection

from tests.support import free_port
from worker.queue import BrokerUnavailableError, QueueNotFoundError, broker_errors
from worker.queue.probe import waiting_messages

UNAVAILABLE = [
    kombu.exceptions.OperationalError("[Errno 111] Connection refused"),
    kombu.exceptions.ConnectionLimitExceeded(10),
    amqp.exceptions.RecoverableConnectionError("connection already closed"),
    amqp.exceptions.AccessRefused("ACCESS_REFUSED - Login was refused", (10, 40)),
    amqp.exceptions.ConnectionForced("CONNECTION_FORCED - broker forced connection closure"),
    # An exchange that is not there when publishing is a refusal, not a missing queue.
    amqp.exceptions.NotFound("NOT_FOUND - no exchange 'x'", Basic.Publish),
    redis.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:6379."),
    redis.exceptions.TimeoutError("Timeout reading from socket"),
    redis.exceptions.BusyLoadingError("Redis is loading the dataset in memory"),
    redis.exceptions.AuthenticationError("invalid username-password pair"),
    ConnectionRefusedError(111, "Connection refused"),
    ConnectionResetError(104, "Connection reset by peer"),
    TimeoutError("timed out"),  # socket.timeout, since Python 3.10
]
BUGS = [
    TypeError("send_task() got an unexpected keyword argument"),
    ValueError("not a valid priority"),
    KeyError("queue"),
    AttributeError("'NoneType' object has no attribute 'send_task'"),
    kombu.exceptions.EncodeError("Object of type bytes is not JSON serializable"),
]


@pytest.mark.parametrize("foreign", UNAVAILABLE, ids=lambda e: type(e).__name__)
def test_a_broker_that_cannot_serve_becomes_broker_unavailable(foreign: Exception) -> None:
    with pytest.raises(BrokerUnavailableError) as raised, broker_errors("publishing"):
        raise foreign
    assert type(raised.value) is BrokerUnavailableError
    assert raised.value.__cause__ is foreign
    assert raised.value.kind == "transient"
    said = f"broker unavailable for publishing ({type(foreign).__name__}: {foreign})"
    assert str(raised.value) == said


@pytest.mark.parametrize("bug", BUGS, ids=lambda e: type(e).__name__)
def test_a_bug_is_not_taken_for_a_broker_that_is_down(bug: Exception) -> None:
    with pytest.raises(type(bug)) as raised, broker_errors("publishing"):
        raise bug
    assert raised.value is bug


def test_rabbitmqs_404_on_a_passive_queue_declare_is_a_missing_queue() -> None:
    # As py-amqp raises it when RabbitMQ closes the channel (Channel._on_close).
    closed = amqp.exceptions.error_for_code(
        404, "NOT_FOUND - no queue 'mail' in vhost '/'", Queue.Declare, amqp.exceptions.ChannelError
    )
    assert isinstance(closed, amqp.exceptions.NotFound)
    with pytest.raises(QueueNotFoundError) as raised, broker_errors("the depth of mail"):
        raise closed
    assert raised.value.__cause__ is closed


def test_the_reply_code_decides_a_missing_queue_not_the_text() -> None:
    worded_otherwise = amqp.exceptions.ChannelError("gone", Queue.Declare, None, "404")
    with pytest.raises(QueueNotFoundError), broker_errors("the depth of mail"):
        raise worded_otherwise
    refused = amqp.exceptions.ChannelError("NOT_FOUND - no queue 'mail'", Queue.Declare, None, 403)
    with pytest.raises(BrokerUnavailableError) as raised, broker_errors("the depth of mail"):
        raise refused
    assert type(raised.value) is BrokerUnavailableError


def test_kombus_virtual_transport_names_a_missing_queue_as_rabbitmq_does() -> None:
    connection = Connection("memory://")
    with connection, pytest.raises(QueueNotFoundError), broker_errors("the depth of nobody"):
        connection.default_channel.queue_declare(queue="nobody", passive=True)


def test_the_depth_of_a_queue_nobody_declared_is_zero_on_redis(redis_url: str) -> None:
    assert waiting_messages(Celery(broker=redis_url), "never-declared") == 0


def test_the_depth_of_a_queue_nobody_declared_is_zero_on_rabbitmq(rabbitmq_url: str) -> None:
    assert waiting_messages(Celery(broker=rabbitmq_url), "never-declared") == 0


def test_the_depth_is_unknown_when_the_broker_does_not_answer() -> None:
    celery = Celery(
        broker=f"redis://127.0.0.1:{free_port()}/0",
        broker_connection_timeout=2,
        broker_transport_options={"max_retries": 0},
    )
    assert waiting_messages(celery, "mail") is None
