"""PIPELINING (RFC 2920) against a scripted server that answers only once the batch is in.

The server reads until DATA arrives before it answers MAIL, so a client that
waited for each reply would time out: these tests cannot pass unpipelined.
"""

from __future__ import annotations

import socket
import ssl
import threading
from dataclasses import dataclass, field
from typing import BinaryIO, Protocol, TypeVar

from worker.credentials import Profile
from worker.transport import OutgoingMessage
from worker.transport.smtp import SmtpSession

BANNER = b"220 scripted ESMTP\r\n"
EHLO = b"250-scripted\r\n250-PIPELINING\r\n250 8BITMIME\r\n"


@dataclass
class Scripted:
    """Answers one pipelined transaction with ``replies`` (MAIL, each RCPT, DATA)."""

    replies: list[bytes]
    final: bytes = b"250 2.0.0 Ok: queued as ABC123\r\n"
    batches: list[bytes] = field(default_factory=list)  # what came before the first reply
    body: bytes = b""
    port: int = 0
    ehlo: bytes = EHLO

    def serve(self, listener: socket.socket) -> None:
        conn, _ = listener.accept()
        with conn, conn.makefile("rb") as reader:
            greet(conn, reader, self.ehlo)
            batch = read_until(reader, b"DATA\r\n")
            if not batch.endswith(b"DATA\r\n"):
                return
            self.batches.append(batch)
            conn.sendall(b"".join(self.replies))
            if self.replies[-1].startswith(b"354"):
                while (line := reader.readline()) and line != b".\r\n":
                    self.body += line
                conn.sendall(self.final)
            while line := reader.readline():  # RSET, QUIT
                conn.sendall(b"221 Bye\r\n" if line.startswith(b"QUIT") else b"250 Ok\r\n")


class OneConnection(Protocol):
    port: int

    def serve(self, listener: socket.socket) -> None: ...


S = TypeVar("S", bound=OneConnection)


def serve_one_connection(server: S) -> S:
    """Listen on a free port and let ``server`` answer its one connection, in a thread."""
    listener = socket.create_server(("127.0.0.1", 0))
    server.port = listener.getsockname()[1]

    def run() -> None:
        with listener:
            server.serve(listener)

    threading.Thread(target=run, daemon=True).start()
    return server


def greet(conn: socket.socket, reader: BinaryIO, ehlo: bytes = EHLO) -> None:
    """The banner, then the answer to EHLO (offering PIPELINING)."""
    conn.settimeout(5)
    conn.sendall(BANNER)
    reader.readline()  # EHLO
    conn.sendall(ehlo)


def read_until(reader: BinaryIO, end: bytes) -> bytes:
    """Lines up to and including the one that ends with ``end``, or all there was."""
    received = b""
    while not received.endswith(end):
        line = reader.readline()
        if not line:
            break
        received += line
    return received


def start(replies: list[bytes], ehlo: bytes = EHLO) -> Scripted:
    return serve_one_connection(Scripted(replies, ehlo=ehlo))


def session(server: OneConnection) -> SmtpSession:
    profile = Profile(
        name="p",
        provider="generic",
        host="127.0.0.1",
        port=server.port,
        security="none",
        allow_plaintext_auth=True,
        from_email="alerts@example.test",
        auth="password",
        username="alerts@example.test",
    )
    smtp = SmtpSession(profile, ssl.create_default_context(), timeout_seconds=5)
    smtp.connect()
    return smtp


def message(*recipients: str) -> OutgoingMessage:
    return OutgoingMessage(
        sender="alerts@example.test",
        recipients=recipients,
        data=b"Subject: disk\r\n\r\n.starts with a dot\r\nbody\r\n",
        message_id="<1@example.test>",
    )


def test_mail_rcpt_and_data_go_out_in_one_batch() -> None:
    server = start([b"250 2.1.0 Ok\r\n", b"250 2.1.5 Ok\r\n", b"250 2.1.5 Ok\r\n", b"354 Go\r\n"])
    smtp = session(server)
    result = smtp.send(message("a@example.test", "b@example.test"))
    smtp.close()
    assert result.kind == "delivered", result
    assert result.queue_id == "ABC123"
    assert server.batches == [
        b"MAIL FROM:<alerts@example.test>\r\nRCPT TO:<a@example.test>\r\n"
        b"RCPT TO:<b@example.test>\r\nDATA\r\n"
    ]
    assert server.body == b"Subject: disk\r\n\r\n..starts with a dot\r\nbody\r\n"


def test_one_refused_recipient_in_a_batch_is_reported_and_the_rest_delivered() -> None:
    server = start([b"250 Ok\r\n", b"550 5.1.1 No such user\r\n", b"250 Ok\r\n", b"354 Go\r\n"])
    smtp = session(server)
    result = smtp.send(message("gone@example.test", "b@example.test"))
    smtp.close()
    assert result.kind == "delivered"
    assert [(r.address, r.accepted, r.code) for r in result.recipients] == [
        ("gone@example.test", False, 550),
        ("b@example.test", True, 250),
    ]


def test_all_recipients_refused_sends_no_body() -> None:
    server = start([b"250 Ok\r\n", b"550 5.1.1 No such user\r\n", b"554 5.5.1 No recipients\r\n"])
    smtp = session(server)
    result = smtp.send(message("gone@example.test"))
    smtp.close()
    assert (result.kind, result.phase, result.code) == ("permanent", "rcpt", 550)
    assert server.body == b""


def test_a_354_after_every_recipient_failed_gets_an_empty_message() -> None:
    # RFC 2920 §3.1: a server may accept DATA anyway; the client ends it at once.
    server = start([b"250 Ok\r\n", b"451 4.3.0 Try later\r\n", b"354 Go\r\n"])
    smtp = session(server)
    result = smtp.send(message("later@example.test"))
    assert (result.kind, result.phase, result.code) == ("transient", "rcpt", 451)
    assert server.body == b""
    assert not smtp.broken
    smtp.close()


def test_a_refused_sender_is_reported_at_mail() -> None:
    server = start(
        [b"550 5.7.60 SendAsDenied\r\n", b"503 5.5.1 Need MAIL\r\n", b"503 5.5.1 Need RCPT\r\n"]
    )
    smtp = session(server)
    result = smtp.send(message("a@example.test"))
    smtp.close()
    assert (result.kind, result.phase, result.code) == ("permanent", "mail", 550)
