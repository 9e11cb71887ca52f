"""What the fair yardsticks of the intake and the relay keep: one row, committed, one LPUSH.

    BENCH_FAIR_DB=path BENCH_FAIR_REDIS=redis://... (read by fair_api.py, fair_smtp.py)

The least a queue that loses nothing must do per message: insert it into a
SQLite file with mailpipe's own pragmas (WAL, synchronous=NORMAL), commit,
then LPUSH its id to Redis for a worker. No ORM, no outbox bookkeeping, no
Celery message: the ideal that mailpipe's faces are measured against.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import uuid

import redis

QUEUE_KEY = "fair:jobs"
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS jobs (id TEXT PRIMARY KEY, sender TEXT, recipients TEXT, "
    "subject TEXT, body BLOB, created_at REAL)"
)


class FairStore:
    """One SQLite connection per thread (sqlite3's rule), one Redis client for all."""

    def __init__(self, database: str, redis_url: str) -> None:
        self.database = database
        self.redis = redis.Redis.from_url(redis_url)
        self._local = threading.local()
        self._connection().execute(_SCHEMA)

    @classmethod
    def from_env(cls) -> FairStore:
        return cls(os.environ["BENCH_FAIR_DB"], os.environ["BENCH_FAIR_REDIS"])

    def _connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(self.database, timeout=10.0, isolation_level=None)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            self._local.connection = connection
        return connection

    def add(self, sender: str, recipients: str, subject: str, body: bytes) -> str:
        """Insert one job and commit, then queue its id; the id."""
        job_id = uuid.uuid4().hex
        connection = self._connection()
        connection.execute("BEGIN IMMEDIATE")
        connection.execute(
            "INSERT INTO jobs (id, sender, recipients, subject, body, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (job_id, sender, recipients, subject, body, time.time()),
        )
        connection.execute("COMMIT")
        self.redis.lpush(QUEUE_KEY, job_id)
        return job_id


def stored(database: str) -> int:
    """Jobs in a fair store's file (for the run's check that every answer is a stored job)."""
    with sqlite3.connect(database) as connection:
        return int(connection.execute("SELECT count(*) FROM jobs").fetchone()[0])
