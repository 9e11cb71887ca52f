"""Real local servers for the tests: a private redis-server, a token endpoint, an SMTP server."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
from cryptography.fernet import Fernet, MultiFernet
from kombu import Connection
from pytest_httpserver import HTTPServer

from tests.fakes.graph import graph, graph_server  # noqa: F401 (fixtures for every folder)
from tests.fakes.idp import FakeIdP
from tests.fakes.login import login  # noqa: F401 (a fixture for every test folder)
from tests.fakes.smtp_server import FakeSmtpServer, ServerFactory, TlsFiles, make_tls
from tests.interop.matrix import print_matrix
from tests.leaks import SecretRegistry
from tests.pipeline import forkserver, pipeline, upstream_options  # noqa: F401 (fixtures for every folder)
from tests.support import (
    AMQP_URL,
    POSTGRES_URL,
    RabbitMQNotRunningError,
    RabbitMQNoVhostError,
    RabbitMQVhost,
    RedisServer,
    fresh_database,
    postgres_problem,
)
from worker.store import Store


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A redis-server of our own on a free port, so no test touches a shared Redis."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    try:
        server.start(timeout_seconds=10)
    except RuntimeError as exc:
        pytest.fail(str(exc))
    yield f"{server.url}/0"
    server.stop()


@pytest.fixture
def redis_url(redis_server: str) -> str:
    client = redis.Redis.from_url(redis_server)
    client.flushall()
    client.close()
    return redis_server


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def secret_key() -> str:
    return Fernet.generate_key().decode()


@pytest.fixture
def fernet(secret_key: str) -> MultiFernet:
    return MultiFernet([Fernet(secret_key)])


class _Recorder(logging.Handler):
    """Keeps every formatted log line, tracebacks included."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture(autouse=True)
def secrets(request: pytest.FixtureRequest) -> Iterator[SecretRegistry]:
    """Collects the test's secrets; afterwards no log line or Redis value may hold one."""
    registry = SecretRegistry()
    recorder = _Recorder()
    root = logging.getLogger()
    previous_level = root.level
    root.addHandler(recorder)
    root.setLevel(logging.DEBUG)
    yield registry
    root.removeHandler(recorder)
    root.setLevel(previous_level)
    registry.assert_absent(*recorder.lines)
    if "redis_server" in request.fixturenames:
        values = redis_contents(request.getfixturevalue("redis_server"))
        registry.assert_absent(*(v.decode(errors="replace") for v in values))


def redis_contents(url: str) -> list[bytes]:
    """Every key and every value in every database of the Redis at ``url``, as bytes."""
    admin = redis.Redis.from_url(url)
    try:
        databases = [int(name.removeprefix("db")) for name in admin.info("keyspace")]
    finally:
        admin.close()
    found: list[bytes] = []
    for db in databases:
        # The URL's own database number would win over a db= argument: replace it.
        client = redis.Redis.from_url(urlunsplit(urlsplit(url)._replace(path=f"/{db}")))
        try:
            for key in client.scan_iter(count=1000):
                found.append(key)
                found.extend(_values(client, key))
        finally:
            client.close()
    return found


def _values(client: redis.Redis, key: bytes) -> list[bytes]:
    kind = client.type(key)
    if kind == b"string":
        return [client.get(key) or b""]
    if kind == b"hash":
        return [b"%s=%s" % item for item in client.hgetall(key).items()]
    if kind == b"list":
        return list(client.lrange(key, 0, -1))
    if kind == b"set":
        return list(client.smembers(key))
    if kind == b"zset":
        return [member for member, _ in client.zrange(key, 0, -1, withscores=True)]
    if kind == b"stream":
        return [
            b"%s=%s" % item for _, fields in client.xrange(key, "-", "+") for item in fields.items()
        ]
    if kind == b"none":  # expired or deleted since the scan found it
        return []
    raise AssertionError(f"the secret scan cannot read Redis type {kind!r} (key {key!r})")


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database with the current schema: SQLite, and PostgreSQL when reachable."""
    if request.param == "postgresql" and (problem := postgres_problem()):
        if problem == "not running":
            pytest.skip(f"no PostgreSQL server at {POSTGRES_URL}: PostgreSQL variant skipped")
        pytest.fail(f"PostgreSQL at {POSTGRES_URL} answers but refuses the tests: {problem}")
    return fresh_database(request.param, tmp_path)


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    store = Store(database_url)
    yield store
    store.engine.dispose()


@pytest.fixture(scope="session")
def http_server() -> Iterator[HTTPServer]:
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    yield server
    server.clear()
    if server.is_running():
        server.stop()


@pytest.fixture
def idp(http_server: HTTPServer, secrets: SecretRegistry) -> Iterator[FakeIdP]:
    http_server.clear()
    fake = FakeIdP(http_server, secrets)
    yield fake
    fake.release.set()
    http_server.clear()


@pytest.fixture(scope="session")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def make_server(tls: TlsFiles, idp: FakeIdP) -> Iterator[ServerFactory]:
    """Start SMTP servers that accept exactly the tokens the test IdP issued."""
    servers: list[FakeSmtpServer] = []

    def make(**options: object) -> FakeSmtpServer:
        options.setdefault("tls", tls)
        options.setdefault("token_ok", lambda user, token: token in idp.issued_access_tokens)
        server = FakeSmtpServer(**options)  # type: ignore[arg-type]
        server.start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


# Fixtures that start real processes (Celery workers, a browser, mail servers): a test
# file that uses one takes seconds per test.
SLOW_FIXTURES = frozenset({"pipeline", "browser", "mailpipe", "upstream"})


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The files of slow tests first, so that the parallel run ends on short tests.

    With the suite spread over processes, a slow test handed out last keeps one process
    busy while the others have finished. The sort is stable: each file's tests stay
    together and in order (their module fixtures start once), and every process
    computes the same order, as pytest-xdist requires.
    """
    slow = {item.path for item in items if SLOW_FIXTURES.intersection(item.fixturenames)}
    slow.update(item.path for item in items if "bench" in item.path.parts)
    items.sort(key=lambda item: item.path not in slow)


# Test files whose module-scoped fixtures start real servers (Dovecot, Postfix and Exim;
# the whole quickstart sandbox): all of a file's tests go to one test process, so that
# each server starts once per run, not once in every process that gets one of its tests.
SHARED_FIXTURE_FILES = frozenset(
    {"tests/interop/test_matrix.py", "tests/deploy/test_quickstart.py"}
)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object | None:
    """``--dist loadgroup`` (the default here), with each of SHARED_FIXTURE_FILES one group.

    Every other test is handed out on its own to whichever process is free. (pytest-xdist
    3.8 cannot read ``xdist_group`` marks under pytest 9, whose node ids it cannot
    suffix, so the groups are named here, by file.)
    """
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling

    class SharedFixtureScheduling(LoadGroupScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return path if path in SHARED_FIXTURE_FILES else super()._split_scope(nodeid)

    return SharedFixtureScheduling(config, log)  # type: ignore[arg-type]


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: two processes per core. Most of a test's time is spent waiting on the
    servers and workers it started: on 2 cores the suite took 12 min with 2 processes,
    5 min 14 s with 3 and 4 min 42 s with 4 (idle machine, same commit)."""
    return max(2, len(os.sched_getaffinity(0)) * 2)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The interop matrix's table, from the rows its tests recorded (tests/interop)."""
    reports = [r for kind in terminalreporter.stats.values() for r in kind]
    print_matrix(terminalreporter.write_line, reports)


@pytest.fixture
def rabbitmq_url() -> Iterator[str]:
    """A vhost of this test's own on the machine's RabbitMQ, deleted afterwards: its AMQP URL.

    Asked for before ``pipeline``, so it outlives the workers that use it.
    """
    vhost = RabbitMQVhost(AMQP_URL)
    try:
        vhost.create()
    except RabbitMQNotRunningError as exc:
        pytest.skip(f"RabbitMQ not reachable at {AMQP_URL} ({exc}): RabbitMQ variant skipped")
    except RabbitMQNoVhostError as exc:
        pytest.skip(
            f"RabbitMQ at {AMQP_URL} answers, but this run cannot make a vhost of its own "
            f"({exc}): RabbitMQ variant skipped rather than use shared queues"
        )
    except RuntimeError as exc:
        vhost.delete()
        pytest.fail(f"RabbitMQ at {AMQP_URL} answers but refuses the tests: {exc}")
    try:
        try:
            with Connection(vhost.url, connect_timeout=5) as connection:
                connection.ensure_connection(max_retries=1)
        except Exception as exc:  # refused login, no access to the vhost: any transport's error
            pytest.fail(f"RabbitMQ refuses the tests in their own vhost {vhost.name}: {exc!r}")
        yield vhost.url
    finally:
        vhost.delete()
