"""What a worker process does when it starts and stops, beyond running tasks."""

from __future__ import annotations

import logging
import sys
import threading
from typing import Any

from celery.signals import (
    worker_init,
    worker_process_init,
    worker_process_shutdown,
    worker_ready,
    worker_shutdown,
)

from worker.errors import MailpipeError
from worker.faces.profile_check import check_profile
from worker.runtime import build_runtime, get_runtime, reset_runtime
from worker.settings import get_settings
from worker.store import Database

log = logging.getLogger("mailpipe.preflight")


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


@worker_process_init.connect  # each prefork pool child, right after its fork
def _warm_up(**_: Any) -> None:
    """Build this child's runtime now, in the background, not in its first task.

    Building it (profiles and secrets, the schema and key checks, the lazily
    imported transports) was the wait of the slowest 1% in bench/RESULTS.md's
    latency runs: the first task of each child built it while the messages
    behind it waited, held by the parent (prefetch) or taken along by that
    task's claim. A thread, because this signal's handler must return within
    worker_proc_alive_timeout (4 s); a first task that comes sooner waits for
    the same build under get_runtime()'s lock instead of starting a second.
    """
    threading.Thread(target=_build_runtime, name="mailpipe-warm-up", daemon=True).start()


def _build_runtime() -> None:
    try:
        get_runtime()
    except Exception as exc:  # the first task builds it again and fails with the reason
        log.warning("could not build the runtime ahead of the first task: %s", type(exc).__name__)


@worker_process_shutdown.connect  # a prefork pool child
@worker_shutdown.connect  # the main process, where the threads and solo pools send
def _close_connections(**_: Any) -> None:
    """QUIT on every pooled SMTP connection, close Redis and the database: a clean goodbye."""
    reset_runtime()


@worker_ready.connect
def _preflight(**_: Any) -> None:
    """Check every profile once (token, connect, TLS, AUTH; nothing sent), in the background.

    One line per unhealthy profile, so a broken credential is in the log before a
    page needs it; the worker serves the healthy profiles meanwhile either way.
    """
    if get_settings().preflight:
        threading.Thread(target=_check_profiles, name="mailpipe-preflight", daemon=True).start()


def _check_profiles() -> None:
    try:
        rt = build_runtime()
    except MailpipeError as exc:
        log.warning("profile pre-flight skipped: %s", exc)
        return
    try:
        for profile in rt.profiles:
            failed = next(
                (s for s in check_profile(rt.credentials, profile.name) if not s.ok), None
            )
            if failed is None:
                log.info("profile %s: ready (token, connection and AUTH checked)", profile.name)
                continue
            hint = f" — {failed.hint}" if failed.hint else ""
            log.warning(
                "profile %s is unhealthy: %s failed: %s%s", profile.name, failed.name,
                failed.detail, hint,
            )  # fmt: skip
    finally:
        rt.close()
