"""A front for Postfix's smtp-sink: answers AUTH XOAUTH2 itself, can delay replies.

smtp-sink is the fastest SMTP sink at hand (about 10k messages/s here) but it
answers any AUTH with "250 Ok", which smtplib rightly refuses (RFC 4954 wants
235). The front answers AUTH XOAUTH2 with 235 (checking the token's shape),
then relays raw bytes both ways with blocking sockets in two threads per
connection (recv/sendall release the GIL). In WAN mode every server reply
reaches the client ``delay`` seconds after the server sent it, like the round
trip to a cloud provider: replies to pipelined commands travel together, as
on a real link, instead of queueing behind each other.
It counts Message-IDs so duplicate deliveries can be found, and round trips:
a flight is what the client sends between two waits for a reply (the first
chunk after a reply reached it starts one), so round trips per message are
flights over messages. ``--stats FILE`` keeps both counts in FILE (JSON).

    python -m bench.run.smtp_front --listen 2525 --sink 2526 [--delay 0.02] [--stats FILE]
"""

from __future__ import annotations

import argparse
import base64
import binascii
import collections
import contextlib
import json
import queue
import re
import signal
import socket
import socketserver
import threading
import time
from collections.abc import Callable
from pathlib import Path

from worker.transport.smtp.sasl import parse_xoauth2

_MESSAGE_ID = re.compile(rb"\r\nMessage-ID:\s*(<[^>]+>)\r\n", re.IGNORECASE)


class Stats:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.logins = 0
        self.bad_logins = 0
        self.message_ids: collections.Counter[bytes] = collections.Counter()
        self.flights = 0

    def counts(self) -> dict[str, int]:
        with self.lock:
            return {
                "messages": sum(self.message_ids.values()),
                "flights": self.flights,
                "logins": self.logins,
            }

    def summary(self) -> str:
        with self.lock:
            duplicated = sum(1 for n in self.message_ids.values() if n > 1)
            return (
                f"logins={self.logins} bad_logins={self.bad_logins} "
                f"messages={sum(self.message_ids.values())} unique={len(self.message_ids)} "
                f"duplicated_ids={duplicated}"
            )


class Front(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 512

    def __init__(self, listen_port: int, sink_port: int, delay_seconds: float) -> None:
        self.sink_port = sink_port
        self.delay_seconds = delay_seconds
        self.stats = Stats()
        super().__init__(("127.0.0.1", listen_port), _Connection)


class _Connection(socketserver.BaseRequestHandler):
    server: Front

    def handle(self) -> None:
        client: socket.socket = self.request
        sink = socket.create_connection(("127.0.0.1", self.server.sink_port))
        for sock in (client, sink):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._to_client = _Link(client, self.server.delay_seconds, self._answered)
        self._waiting = False  # a reply reached the client: its next chunk starts a flight
        replies = threading.Thread(target=self._replies, args=(sink,), daemon=True)
        replies.start()
        try:
            self._commands(client, sink)
        finally:
            sink.close()
            replies.join(5)

    def _commands(self, client: socket.socket, sink: socket.socket) -> None:
        # Raw chunks both ways; the front answers AUTH itself. A client sends
        # AUTH alone and waits for the answer (RFC 4954 forbids pipelining
        # it), so an AUTH command is always a chunk of its own.
        stats = self.server.stats
        while chunk := _recv(client):
            if self._waiting:
                self._waiting = False
                with stats.lock:
                    stats.flights += 1
            if chunk[:5].upper() == b"AUTH ":
                while not chunk.endswith(b"\r\n") and (more := _recv(client)):
                    chunk += more
                self._to_client.send(self._auth(chunk))
                continue
            found = _MESSAGE_ID.findall(chunk)
            if found:
                with stats.lock:
                    stats.message_ids.update(found)
            sink.sendall(chunk)

    def _answered(self) -> None:
        self._waiting = True

    def _auth(self, line: bytes) -> bytes:
        parts = line.split()
        try:
            ok = (
                len(parts) == 3
                and parts[1].upper() == b"XOAUTH2"
                and parse_xoauth2(base64.b64decode(parts[2], validate=True)) is not None
            )
        except binascii.Error:
            ok = False
        with self.server.stats.lock:
            if ok:
                self.server.stats.logins += 1
            else:
                self.server.stats.bad_logins += 1
        if ok:
            return b"235 2.7.0 Authentication successful\r\n"
        return b"535 5.7.8 Authentication credentials invalid\r\n"

    def _replies(self, sink: socket.socket) -> None:
        try:
            while chunk := sink.recv(65536):
                # smtp-sink announces AUTH PLAIN LOGIN; the front speaks XOAUTH2.
                self._to_client.send(chunk.replace(b"AUTH PLAIN LOGIN", b"AUTH XOAUTH2"))
        except OSError:
            pass
        finally:
            self._to_client.close()


def _recv(sock: socket.socket) -> bytes:
    """The next chunk, or b"" once either side has closed the connection."""
    try:
        return sock.recv(65536)
    except OSError:
        return b""


class _Link:
    """One direction of a connection with a fixed one-way latency (none: send at once)."""

    def __init__(
        self, sock: socket.socket, delay_seconds: float, delivered: Callable[[], None]
    ) -> None:
        self.sock = sock
        self.delay_seconds = delay_seconds
        self.delivered = delivered  # called once data reached the client
        self.queue: queue.SimpleQueue[tuple[float, bytes] | None] = queue.SimpleQueue()
        if delay_seconds:
            threading.Thread(target=self._deliver, daemon=True).start()

    def send(self, data: bytes) -> None:
        if not self.delay_seconds:
            self.sock.sendall(data)
            self.delivered()
            return
        self.queue.put((time.monotonic() + self.delay_seconds, data))

    def close(self) -> None:
        if self.delay_seconds:
            self.queue.put(None)  # after what is in flight
        else:
            self.sock.close()

    def _deliver(self) -> None:
        try:
            while item := self.queue.get():
                due, data = item
                time.sleep(max(0.0, due - time.monotonic()))
                self.sock.sendall(data)
                self.delivered()
        except OSError:
            pass
        finally:
            self.sock.close()


def _keep_stats(stats: Stats, path: Path) -> None:
    written = None
    while True:
        counts = stats.counts()
        if counts != written:
            path.with_suffix(".tmp").write_text(json.dumps(counts))
            path.with_suffix(".tmp").replace(path)  # readers never see half a file
            written = counts
        time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", type=int, required=True)
    parser.add_argument("--sink", type=int, required=True)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds added to each reply")
    parser.add_argument("--stats", type=Path, help="keep the message and flight counts here")
    args = parser.parse_args()
    front = Front(args.listen, args.sink, args.delay)
    if args.stats:
        threading.Thread(target=_keep_stats, args=(front.stats, args.stats), daemon=True).start()
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=front.shutdown).start())
    with contextlib.suppress(KeyboardInterrupt):
        front.serve_forever()
    print(front.stats.summary(), flush=True)


if __name__ == "__main__":
    main()
