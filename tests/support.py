"""Local resources the tests and the benchmark both need: Redis, free ports, fresh databases."""

from __future__ import annotations

import atexit
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import httpx
import redis
import sqlalchemy
import sqlalchemy.exc

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

    Running the migrations takes about half a second, and hundreds of tests each want
    a database of their own, so each process migrates once. SQLite: a copy of a file
    this process migrated (byte for byte what the migrations make). PostgreSQL: this
    process's own database (created on first use, dropped at exit), emptied row by row
    while its schema is still the one the migrations made, else rebuilt.
    """
    if kind == "sqlite":
        path = directory / f"mailpipe-{secrets.token_hex(4)}.db"
        shutil.copyfile(_sqlite_template(), path)
        return f"sqlite:///{path}"
    url = _own_postgres_database()
    engine = sqlalchemy.create_engine(url)
    try:
        if not (_POSTGRES_EMPTIED and _postgres_schema(engine) == _POSTGRES_EMPTIED[0][0]):
            _migrate_afresh(engine)
            _POSTGRES_EMPTIED[:] = [(_postgres_schema(engine), _emptying_statements(engine))]
        with engine.begin() as connection:
            connection.exec_driver_sql(_POSTGRES_EMPTIED[0][1])
    finally:
        engine.dispose()
    return url


_SQLITE_TEMPLATE: list[Path] = []
# This process's PostgreSQL database right after the migrations ran: a digest of its
# schema, and the statements that empty it again (one string: one round trip).
_POSTGRES_EMPTIED: list[tuple[str | None, str]] = []


def _sqlite_template() -> Path:
    """A SQLite file this process migrated to the newest revision, removed at exit."""
    if not _SQLITE_TEMPLATE:
        directory = Path(tempfile.mkdtemp(prefix="mailpipe-template-"))
        atexit.register(shutil.rmtree, directory, True)
        path = directory / "template.db"
        store = Store(f"sqlite:///{path}", create=True)
        store.upgrade()
        store.engine.dispose()  # the last connection folds the WAL into the file
        _SQLITE_TEMPLATE.append(path)
    return _SQLITE_TEMPLATE[0]


def _migrate_afresh(engine: sqlalchemy.Engine) -> None:
    with engine.begin() as connection:
        connection.execute(sqlalchemy.text("DROP SCHEMA public CASCADE"))
        connection.execute(sqlalchemy.text("CREATE SCHEMA public"))
    store = Store(engine.url.render_as_string(hide_password=False))
    store.upgrade()
    store.engine.dispose()


# A digest of everything a test could change in the schema (tables, columns, defaults,
# constraints, indexes, functions, types, triggers, the migrations' revision), so that a
# database a test altered is rebuilt by the migrations, never reused.
_SCHEMA_DIGEST = """
SELECT md5(concat_ws('|',
  (SELECT string_agg(concat_ws(',', c.relname, c.relkind, a.attname,
     format_type(a.atttypid, a.atttypmod), a.attnotnull, pg_get_expr(d.adbin, d.adrelid)),
     ';' ORDER BY c.relname, a.attnum)
   FROM pg_class c
   LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
   LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
   WHERE c.relnamespace = 'public'::regnamespace),
  (SELECT string_agg(concat_ws(',', conrelid::regclass, conname, pg_get_constraintdef(oid)),
     ';' ORDER BY conrelid::regclass::text, conname)
   FROM pg_constraint WHERE connamespace = 'public'::regnamespace),
  (SELECT string_agg(indexdef, ';' ORDER BY indexname) FROM pg_indexes
   WHERE schemaname = 'public'),
  (SELECT string_agg(concat_ws(',', proname, pg_get_function_identity_arguments(oid)),
     ';' ORDER BY proname) FROM pg_proc WHERE pronamespace = 'public'::regnamespace),
  (SELECT string_agg(typname, ';' ORDER BY typname) FROM pg_type
   WHERE typnamespace = 'public'::regnamespace),
  (SELECT string_agg(concat_ws(',', tgrelid::regclass, tgname), ';' ORDER BY tgname)
   FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
   WHERE c.relnamespace = 'public'::regnamespace),
  (SELECT string_agg(version_num, ';' ORDER BY version_num) FROM public.alembic_version)))
"""


def _postgres_schema(engine: sqlalchemy.Engine) -> str | None:
    """The digest of the schema; None when it has no alembic_version (not ours)."""
    try:
        with engine.connect() as connection:
            return str(connection.exec_driver_sql(_SCHEMA_DIGEST).scalar_one())
    except sqlalchemy.exc.ProgrammingError:
        return None


def _emptying_statements(engine: sqlalchemy.Engine) -> str:
    """DELETEs of every table but alembic_version, children first, and sequence restarts.

    DELETE, not TRUNCATE: on tables of a few rows it is ten times faster (TRUNCATE
    makes new files for every table and index).
    """
    tables = sqlalchemy.MetaData()
    tables.reflect(engine)
    with engine.connect() as connection:
        sequences = connection.exec_driver_sql(
            "SELECT quote_ident(sequencename) FROM pg_sequences WHERE schemaname = 'public'"
        ).scalars()
        restarts = [f"ALTER SEQUENCE {name} RESTART" for name in sequences]
    children_first = [t for t in reversed(tables.sorted_tables) if t.name != "alembic_version"]
    deletes = [str(table.delete().compile(dialect=engine.dialect)) for table in children_first]
    return "; ".join(deletes + restarts)


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
