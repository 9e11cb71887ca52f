"""Local resources the tests and the benchmark both need: Redis, free ports, fresh databases."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis
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


class RedisServer:
    """A redis-server of our own on a free port, so nothing touches a shared Redis.

    With ``aof`` every write goes to an append-only file in ``directory``, and
    ``start`` after ``kill`` replays it (a Redis restart that keeps the data).
    """

    def __init__(self, directory: Path, *, aof: bool = False) -> None:
        self.directory = directory
        self.append_only = aof
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_seconds: float = 30.0) -> None:
        """Start it and wait until it answers PING; RuntimeError (with the log's path) if not."""
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed: run `make test` (it installs it)")
        log = self.directory / "redis.log"
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes" if self.append_only else "no", "--appendfsync", "everysec",
             "--maxmemory-policy", "noeviction",
             "--dir", str(self.directory), "--logfile", str(log)],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + timeout_seconds
        while not self._answers():
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.kill()
                raise RuntimeError(f"redis-server did not start: see {log}")
            time.sleep(0.05)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(30)

    def _answers(self) -> bool:
        client = redis.Redis.from_url(self.url)
        try:
            return bool(client.ping())
        except redis.RedisError:  # refused, or still loading the AOF
            return False
        finally:
            client.close()
