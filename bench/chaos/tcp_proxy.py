"""A TCP proxy in threads, between the run's processes and PostgreSQL, that can be cut.

A PostgreSQL outage is this proxy failing: every open connection is dropped and
each new one is closed at once, as a server that went away would look to a
client; then it serves again. The server itself is shared and never touched.
"""

from __future__ import annotations

import contextlib
import socket
import threading

_CHUNK = 65536


class TcpProxy:
    """127.0.0.1:``port`` → ``upstream``; ``cut()`` until ``restore()``. Thread-safe."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)  # so close() is noticed
        self.port = int(self._listener.getsockname()[1])
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._down = False
        self._closed = threading.Event()
        threading.Thread(target=self._accept, name="chaos-proxy", daemon=True).start()

    def cut(self) -> None:
        """Drop every connection; refuse new ones until ``restore()``."""
        with self._lock:
            self._down = True
            dropped, self._open = list(self._open), set()
        for sock in dropped:
            _close(sock)

    def restore(self) -> None:
        with self._lock:
            self._down = False

    def close(self) -> None:
        self._closed.set()
        self.cut()
        self._listener.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # closed
            self._connect(client)

    def _connect(self, client: socket.socket) -> None:
        client.settimeout(None)
        with self._lock:
            down = self._down
        if down:
            _close(client)
            return
        try:
            server = socket.create_connection(self.upstream, timeout=5)
        except OSError:
            _close(client)
            return
        server.settimeout(None)
        with self._lock:
            if self._down:  # cut while connecting
                _close(client)
                _close(server)
                return
            self._open |= {client, server}
        for source, sink in ((client, server), (server, client)):
            threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(_CHUNK):
                sink.sendall(data)
        except OSError:
            pass
        with self._lock:
            self._open.difference_update((source, sink))
        _close(source)
        _close(sink)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
