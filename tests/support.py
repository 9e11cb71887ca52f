"""Local resources the tests and the benchmark both need: Redis, free ports, fresh databases."""

from __future__ import annotations

import atexit
import os
import secrets
import shutil
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import httpx
import redis
import sqlalchemy

from worker.store import Store

POSTGRES_URL = os.environ.get(
    "MAILPIPE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
# The RabbitMQ server the RabbitMQ variants use; they make a vhost of their own on it.
AMQP_URL = os.environ.get("MAILPIPE_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def postgres_problem() -> str | None:
    """None when the PostgreSQL server at POSTGRES_URL lets us in; else why not.

    "not running" means nothing answers (a machine without PostgreSQL): the
    PostgreSQL variants are skipped. Any other problem (a server that answers
    but refuses us) must fail them, not skip them.
    """
    try:
        import psycopg

        with psycopg.connect(POSTGRES_URL.replace("+psycopg", ""), connect_timeout=2):
            return None
    except Exception as exc:
        text = str(exc)
        if "Connection refused" in text or "No such file or directory" in text:
            return "not running"
        return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"


_OWN_DATABASE: list[str] = []


def _own_postgres_database() -> str:
    """A database of this process's own on the server at POSTGRES_URL, dropped at exit.

    The server is shared with other software and other test runs: nothing
    here ever touches a database it did not create.
    """
    if not _OWN_DATABASE:
        name = f"mailpipe_test_{os.getpid()}_{secrets.token_hex(3)}"
        admin = sqlalchemy.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        url = sqlalchemy.make_url(POSTGRES_URL).set(database=name)
        _OWN_DATABASE.append(url.render_as_string(hide_password=False))
        atexit.register(_drop_database, name)
    return _OWN_DATABASE[0]


def _drop_database(name: str) -> None:
    admin = sqlalchemy.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def fresh_database(kind: str, directory: Path) -> str:
    """The URL of an empty database at the current schema: "sqlite" or "postgresql".

    PostgreSQL means this process's own database (created on first use,
    dropped at exit), emptied first.
    """
    if kind == "sqlite":
        url = f"sqlite:///{directory / f'mailpipe-{secrets.token_hex(4)}.db'}"
    else:
        url = _own_postgres_database()
        engine = sqlalchemy.create_engine(url)
        with engine.begin() as connection:
            connection.execute(sqlalchemy.text("DROP SCHEMA public CASCADE"))
            connection.execute(sqlalchemy.text("CREATE SCHEMA public"))
        engine.dispose()
    store = Store(url, create=True)
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


class RabbitMQNotRunningError(Exception):
    """Nothing answers at AMQP_URL (a machine without RabbitMQ): the variants are skipped."""


class RabbitMQNoVhostError(Exception):
    """RabbitMQ answers, but no way to make a vhost is at hand (no management API, no CLI)."""


class RabbitMQVhost:
    """A virtual host of this run's own on the RabbitMQ at AMQP_URL; ``delete`` removes it.

    The server is shared with other software and other test runs: the tests
    declare, fill and drop queues only inside a vhost they made, never in the
    one AMQP_URL names, so nothing they did not create is ever purged or
    deleted. The vhost is made through the management HTTP API when it
    answers (``MAILPIPE_TEST_RABBITMQ_API``, default port 15672), else with
    ``rabbitmqctl`` for a server on this machine. A server or tool that answers
    but refuses is a RuntimeError: the tests fail rather than skip.
    """

    def __init__(self, base_url: str = AMQP_URL) -> None:
        parts = urlsplit(base_url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 5672
        self.user = unquote(parts.username or "guest")
        self.password = unquote(parts.password or "guest")
        self.api = os.environ.get("MAILPIPE_TEST_RABBITMQ_API", f"http://{self.host}:15672")
        self.name = f"mailpipe-test-{os.getpid()}-{secrets.token_hex(4)}"
        self.url = urlunsplit((parts.scheme, parts.netloc, "/" + quote(self.name, safe=""), "", ""))
        self.made_with: str | None = None  # "api" or "rabbitmqctl" once created

    def create(self) -> None:
        try:
            socket.create_connection((self.host, self.port), timeout=2).close()
        except OSError as exc:
            raise RabbitMQNotRunningError(
                f"nothing answers at {self.host}:{self.port} ({exc})"
            ) from None
        tried = []
        try:
            with self._http() as http:
                _answered(http.put(f"/api/vhosts/{quote(self.name, safe='')}"))
                self.made_with = "api"
                everything = {"configure": ".*", "write": ".*", "read": ".*"}
                path = f"/api/permissions/{quote(self.name, safe='')}/{quote(self.user, safe='')}"
                _answered(http.put(path, json=everything))
            return
        except httpx.TransportError as exc:  # no management plugin there
            tried.append(f"no management API at {self.api} ({type(exc).__name__})")
        ctl = shutil.which("rabbitmqctl")
        if ctl is None or self.host not in ("127.0.0.1", "localhost", "::1"):
            tried.append(
                "no rabbitmqctl on PATH" if ctl is None else f"rabbitmqctl cannot reach {self.host}"
            )
            raise RabbitMQNoVhostError("; ".join(tried))
        _run(ctl, "add_vhost", self.name)
        self.made_with = "rabbitmqctl"
        _run(ctl, "set_permissions", "-p", self.name, self.user, ".*", ".*", ".*")

    def delete(self) -> None:
        """Delete the vhost this object made (its queues and messages go with it)."""
        if self.made_with == "api":
            with self._http() as http:
                _answered(http.delete(f"/api/vhosts/{quote(self.name, safe='')}"))
        elif self.made_with == "rabbitmqctl":
            _run(shutil.which("rabbitmqctl") or "rabbitmqctl", "delete_vhost", self.name)
        self.made_with = None

    def _http(self) -> httpx.Client:
        return httpx.Client(base_url=self.api, auth=(self.user, self.password), timeout=10)


def _answered(response: httpx.Response) -> None:
    if response.status_code >= 300:
        raise RuntimeError(
            f"the RabbitMQ management API refused {response.request.method} "
            f"{response.request.url.path}: {response.status_code} {response.text[:200]}"
        )


def _run(*argv: str) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    if result.returncode != 0:
        raise RuntimeError(
            f"`rabbitmqctl {' '.join(argv[1:])}` failed ({result.returncode}): "
            f"{' '.join((result.stderr or result.stdout).split())[:300]}"
        )
