"""The one adapter for the broker's errors: kombu, py-amqp (RabbitMQ) and redis-py (Redis).

Which type a broker that cannot serve raises depends on the transport and the
step. kombu turns a failure to connect into ``OperationalError``
(``Connection._reraise_as_library_errors``), but a publish or a declare on a
connection already open raises the transport's own: py-amqp's ``AMQPError``
subclasses (kombu's ``ConnectionError`` and ``ChannelError`` are these) or
redis-py's errors, and a socket's ``OSError`` (``socket.timeout`` included)
can escape either. Here they become ``BrokerUnavailableError``, the one error
callers catch; anything else (a ``TypeError``, arguments kombu cannot
serialise) is a bug and goes up as it is.

A passive declare of a queue nobody has declared yet is an answer, not a
failure: RabbitMQ closes the channel with 404 NOT_FOUND (py-amqp's
``NotFound``), and kombu's virtual transports (Redis) raise a plain
``ChannelError`` with the same reply code as the string ``"404"``
(``kombu/transport/virtual/base.py``, ``Channel.queue_declare``). Both become
``QueueNotFoundError``, told apart by the reply code and the method, never
by the message's text.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import amqp.exceptions
import kombu.exceptions
import redis.exceptions
from amqp.spec import Queue

from worker.errors import UnavailableError

_UNAVAILABLE: tuple[type[Exception], ...] = (
    kombu.exceptions.OperationalError,  # kombu could not connect (it wraps the transport's error)
    kombu.exceptions.LimitExceeded,  # no connection or channel left in kombu's pool
    amqp.exceptions.AMQPError,  # RabbitMQ refused or closed the connection or the channel
    redis.exceptions.RedisError,  # Redis as the broker: refused, timed out, loading, auth
    OSError,  # the socket itself: refused, reset, unreachable, timed out
)
_NOT_FOUND = "404"  # py-amqp holds the reply code as an int, kombu's virtual channel as a str


class BrokerUnavailableError(UnavailableError):
    """The broker could not be reached, or refused what was asked; it may not have been done."""


class QueueNotFoundError(BrokerUnavailableError):
    """A passive declare named a queue the broker does not have (nobody has declared it yet).

    Only the depth probe asks for it; to anyone else it is what was asked not done.
    """


@contextmanager
def broker_errors(what: str) -> Iterator[None]:
    """Translate the broker's errors into ``BrokerUnavailableError`` ("… for <what> (…)")."""
    try:
        yield
    except _UNAVAILABLE as exc:
        if _is_missing_queue(exc):
            raise QueueNotFoundError(f"the broker has no such queue ({what})") from exc
        raise BrokerUnavailableError(
            f"broker unavailable for {what} ({type(exc).__name__}: {exc})"
        ) from exc


def _is_missing_queue(exc: Exception) -> bool:
    return (
        isinstance(exc, amqp.exceptions.ChannelError)
        and str(exc.reply_code) == _NOT_FOUND
        and exc.method_sig == Queue.Declare
    )
