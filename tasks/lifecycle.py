"""What a worker process does when it starts and stops, beyond running tasks."""

from __future__ import annotations

import sys
from typing import Any

from celery.signals import worker_init, worker_process_shutdown

from worker.errors import MailpipeError
from worker.runtime import reset_runtime
from worker.settings import get_settings
from worker.store import Database


@worker_init.connect
def _refuse_an_old_schema(**_: Any) -> None:
    """A worker on an out-of-date schema would fail every job: refuse to start instead."""
    # Celery logs and ignores a signal handler's exceptions: only SystemExit stops it.
    database = None
    try:
        database = Database(get_settings().database_url.get_secret_value())
        database.check_schema()
    except MailpipeError as exc:
        print(f"mailpipe: error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    finally:
        if database is not None:
            database.dispose()  # no pooled connection may cross the fork into the pool


@worker_process_shutdown.connect
def _close_connections(**_: Any) -> None:
    reset_runtime()
