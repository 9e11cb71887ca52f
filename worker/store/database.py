"""The database connection: engine, schema migrations, and transactions.

SQLite (default) or PostgreSQL. SQLAlchemy's errors are translated here, once:
an unreachable or busy database is a ``StoreUnavailableError`` (transient).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from worker.errors import ConfigError, UnavailableError


class StoreUnavailableError(UnavailableError):
    """The database could not be reached or was busy; try again."""


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", "worker.store:migrations")
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


class Database:
    """The engine, the schema, and transactions whose driver errors come out as ours."""

    def __init__(self, url: str) -> None:
        self.url = url
        sqlite = url.startswith("sqlite")
        # A ping per checkout finds a server that dropped the connection; a
        # SQLite file cannot, so it is spared the extra statement.
        self.engine: Engine = create_engine(url, pool_pre_ping=not sqlite)
        if sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    # -- schema ------------------------------------------------------------

    def upgrade(self) -> None:
        """Bring the schema to the newest migration (``mailpipe db upgrade``)."""
        with self.engine.begin() as connection:
            config = alembic_config(self.url)
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

    def check_schema(self) -> None:
        """Refuse to run on a schema older (or newer) than this code expects."""
        head = ScriptDirectory.from_config(alembic_config(self.url)).get_current_head()
        try:
            with self.engine.connect() as connection:
                current = MigrationContext.configure(connection).get_current_revision()
        except OperationalError as exc:
            raise ConfigError(f"database unreachable ({_db_error(exc)})") from exc
        if current != head:
            raise ConfigError(
                f"the database schema is at {current or 'nothing'}, this mailpipe needs {head}: "
                "run `mailpipe db upgrade`"
            )

    @contextmanager
    def session(self) -> Iterator[Session]:
        with _unavailable(), self._sessions.begin() as session:
            yield session

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A Core transaction, for the statements every message runs (no ORM bookkeeping)."""
        with _unavailable(), self.engine.begin() as connection:
            yield connection

    def dispose(self) -> None:
        """Close every pooled connection (before a fork, and at shutdown)."""
        self.engine.dispose()


@contextmanager
def _unavailable() -> Iterator[None]:
    """The database could not be reached or was busy: transient, the message says why."""
    try:
        yield
    except OperationalError as exc:
        raise StoreUnavailableError(f"database error: {_db_error(exc)}") from exc


def _sqlite_pragmas(connection: Any, record: Any) -> None:
    # WAL lets readers (the CLI) work while a worker writes; busy_timeout
    # makes concurrent workers wait for the write lock instead of failing.
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # In WAL mode NORMAL still never corrupts the database; it only skips the
    # fsync per commit (the last commits can be lost on power loss, not on a
    # process crash). FULL cost ~10 ms per job here.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _db_error(exc: OperationalError) -> str:
    # The driver's message, first line only: no SQL, no parameters.
    return str(exc.orig).splitlines()[0] if exc.orig else type(exc).__name__
