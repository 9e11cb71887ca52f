"""A database outage: an exclusive write lock on the SQLite file, or the PostgreSQL proxy cut.

Either way no write gets through for the outage's length (SQLite's readers still
read: WAL). What mailpipe does meanwhile (claims and records failing, leases not
renewed, sends already accepted by the server) is judged afterwards by the same
checks as everything else: nothing lost, no duplicate outside a crash window.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import sqlalchemy

from bench.chaos.tcp_proxy import TcpProxy


class DatabaseOutage(Protocol):
    @property
    def description(self) -> str: ...
    def begin(self) -> None: ...
    def end(self) -> None: ...


class SqliteWriteLock:
    """``BEGIN EXCLUSIVE`` on the database file from the harness, held until ``end()``.

    Call both from one thread (sqlite3 connections stay in theirs).
    """

    description = "an exclusive write lock on the SQLite file, BEGIN EXCLUSIVE from the harness"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._connection: sqlite3.Connection | None = None

    def begin(self) -> None:
        # Waits for a write in progress, as any writer would.
        connection = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        connection.execute("BEGIN EXCLUSIVE")
        self._connection = connection

    def end(self) -> None:
        if self._connection is not None:
            self._connection.execute("ROLLBACK")
            self._connection.close()
            self._connection = None


class ProxyCut:
    """The proxy between mailpipe and PostgreSQL drops every connection and refuses new ones."""

    description = "the TCP proxy to PostgreSQL cut, every connection dropped and new ones closed"

    def __init__(self, proxy: TcpProxy) -> None:
        self.proxy = proxy

    def begin(self) -> None:
        self.proxy.cut()

    def end(self) -> None:
        self.proxy.restore()


@contextlib.contextmanager
def outage_for(url: str) -> Iterator[tuple[str, DatabaseOutage]]:
    """The database URL the run's processes should use, and the outage it can be given."""
    parsed = sqlalchemy.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        yield url, SqliteWriteLock(Path(str(parsed.database)))
        return
    proxy = TcpProxy((parsed.host or "127.0.0.1", parsed.port or 5432))
    try:
        proxied = parsed.set(host="127.0.0.1", port=proxy.port)
        yield proxied.render_as_string(hide_password=False), ProxyCut(proxy)
    finally:
        proxy.close()
