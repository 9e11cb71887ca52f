"""Local resources the tests and the benchmark both need: free ports and fresh databases."""

from __future__ import annotations

import os
import secrets
import socket
from pathlib import Path

import sqlalchemy

from worker.store import Store

POSTGRES_URL = os.environ.get(
    "MAILPIPE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def postgres_reachable() -> bool:
    try:
        import psycopg

        with psycopg.connect(POSTGRES_URL.replace("+psycopg", ""), connect_timeout=2):
            return True
    except Exception:
        return False


def fresh_database(kind: str, directory: Path) -> str:
    """The URL of an empty database at the current schema: "sqlite" or "postgresql".

    PostgreSQL means the (disposable) database at POSTGRES_URL, emptied first.
    """
    if kind == "sqlite":
        url = f"sqlite:///{directory / f'mailpipe-{secrets.token_hex(4)}.db'}"
    else:
        url = POSTGRES_URL
        engine = sqlalchemy.create_engine(url)
        with engine.begin() as connection:
            connection.execute(sqlalchemy.text("DROP SCHEMA public CASCADE"))
            connection.execute(sqlalchemy.text("CREATE SCHEMA public"))
        engine.dispose()
    store = Store(url)
    store.upgrade()
    store.engine.dispose()
    return url
