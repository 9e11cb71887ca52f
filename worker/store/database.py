"""The database connection: engine, schema migrations, and transactions.

SQLite (default) or PostgreSQL. SQLAlchemy's errors are translated here, once:
an unreachable or busy database is a ``StoreUnavailableError`` (transient).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect, make_url, text
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError, ProgrammingError
from sqlalchemy.orm import Session, sessionmaker

from worker.errors import ConfigError, UnavailableError

if TYPE_CHECKING:
    from alembic.config import Config


class StoreUnavailableError(UnavailableError):
    """The database could not be reached or was busy; try again."""


# Alembic (about 9 MiB) is imported where the schema is read or changed, not with the
# store: a producer writing jobs never needs it.


def alembic_config(url: str) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", "worker.store:migrations")
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


class Database:
    """The engine, the schema, and transactions whose driver errors come out as ours."""

    def __init__(self, url: str, *, create: bool = False) -> None:
        """``create``: a SQLite file that does not exist yet may be made (``db upgrade``)."""
        self.url = url
        try:
            parsed = make_url(url)
        except ArgumentError:
            raise ConfigError(
                "MAILPIPE_DATABASE_URL is not a database URL (sqlite:///path/to/mailpipe.db "
                "or postgresql+psycopg://user@host/db)"
            ) from None
        sqlite = parsed.get_backend_name() == "sqlite"
        if sqlite and not create and parsed.database not in (None, "", ":memory:"):
            path = Path(parsed.database or "")
            if not path.exists():
                raise ConfigError(_missing_file(parsed.render_as_string(), path))
        # A ping per checkout finds a server that dropped the connection; a
        # SQLite file cannot, so it is spared the extra statement.
        try:
            self.engine: Engine = create_engine(parsed, pool_pre_ping=not sqlite)
        except (ArgumentError, NoSuchModuleError, ImportError) as exc:
            raise ConfigError(
                f"MAILPIPE_DATABASE_URL: cannot use a {parsed.drivername} database "
                f"({type(exc).__name__}; for PostgreSQL: pip install 'mailpipe[postgres]')"
            ) from None
        if sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    # -- schema ------------------------------------------------------------

    def upgrade(self) -> tuple[str | None, str | None]:
        """Bring the schema to the newest migration (``mailpipe db upgrade``): (before, after)."""
        from alembic import command
        from alembic.runtime.migration import MigrationContext

        with _unavailable(), self.engine.begin() as connection:
            before = MigrationContext.configure(connection).get_current_revision()
            config = alembic_config(self.url)
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
            after = MigrationContext.configure(connection).get_current_revision()
        return before, after

    def check_schema(self) -> None:
        """Refuse to run on a schema older (or newer) than this code expects.

        Every worker process checks it, so it reads the version without Alembic.
        """
        head = schema_head()
        try:
            with self.engine.connect() as connection:
                current = _current_revision(connection)
        except OperationalError as exc:  # an outage, not a wrong schema: try again
            raise StoreUnavailableError(f"database unreachable ({_db_error(exc)})") from exc
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


MIGRATIONS = Path(__file__).parent / "migrations" / "versions"


def schema_head() -> str:
    """The newest migration's revision, from the migration files' ``revision`` and
    ``down_revision`` (what Alembic reads too: its ``get_current_head()`` agrees, tested)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in MIGRATIONS.glob("*.py"):
        values = _assignments(path, ("revision", "down_revision"))
        if isinstance(values.get("revision"), str):
            revisions.add(values["revision"])
            down = values.get("down_revision")
            parents.update([down] if isinstance(down, str) else down or ())
    heads = revisions - parents
    if len(heads) != 1:
        raise ConfigError(f"the migrations have {len(heads)} heads ({sorted(heads)}), not one")
    return heads.pop()


def _assignments(path: Path, names: tuple[str, ...]) -> dict[str, Any]:
    """The literal values a module assigns to ``names`` at its top level."""
    values: dict[str, Any] = {}
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        target, value = None, None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign):
            target, value = node.target, node.value
        if isinstance(target, ast.Name) and target.id in names and value is not None:
            values[target.id] = ast.literal_eval(value)
    return values


def _current_revision(connection: Connection) -> str | None:
    """The revision Alembic recorded (its ``alembic_version`` table); None before any."""
    if not inspect(connection).has_table("alembic_version"):
        return None
    row = connection.execute(text("SELECT version_num FROM alembic_version")).first()
    return None if row is None else str(row[0])


def _missing_file(url: str, path: Path) -> str:
    """Most often the command is not pointed at the database its workers use: say where it
    looked and how to point it; creating a new, empty database is the last resort."""
    where = "" if path.is_absolute() else f", relative to the working directory {Path.cwd()}"
    return (
        f"the database file {path.absolute()} does not exist (MAILPIPE_DATABASE_URL={url}"
        f"{where}): set MAILPIPE_DATABASE_URL to the database mailpipe uses (`make run`'s "
        "settings: `. .sandbox/env`); only for a new one, `mailpipe db upgrade` creates it"
    )


@contextmanager
def _unavailable() -> Iterator[None]:
    """The database could not be reached or was busy: transient, the message says why.

    A missing table is no outage: the schema was never created.
    """
    try:
        yield
    except (OperationalError, ProgrammingError) as exc:
        message = _db_error(exc)
        if "no such table" in message or "does not exist" in message:
            raise ConfigError(
                f"the database has no mailpipe tables ({message}): run `mailpipe db upgrade`"
            ) from exc
        if isinstance(exc, ProgrammingError):
            raise
        raise StoreUnavailableError(f"database error: {message}") from exc


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


def _db_error(exc: OperationalError | ProgrammingError) -> str:
    # The driver's message, first line only: no SQL, no parameters.
    return str(exc.orig).splitlines()[0] if exc.orig else type(exc).__name__
