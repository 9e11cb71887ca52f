"""mailpipe's own Celery app, counting its statements: ``celery -A bench.run.instrumented``.

When it exits, each worker process writes its totals to
``$BENCH_COUNTS_DIR/<pid>.json`` (writing after every task cost 10% of the
worker's time); bench/run/mailpipe_runs.py sums the files and divides by
the messages sent. A SQLAlchemy event listener costs about a microsecond per
statement, nothing next to the statements themselves.

With ``$BENCH_TIMELINE_DIR`` set (the latency runs), each process also notes
when each job passes each point of its way, and its own pauses
(bench/run/timeline.py), and writes them there at exit.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

from celery.signals import worker_process_shutdown, worker_shutdown
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.pool import Pool

from bench.run import timeline
from worker.queue import app

__all__ = ["app"]

_counts: Counter[str] = Counter()
_TIMELINE_DIR = os.environ.get("BENCH_TIMELINE_DIR")
if _TIMELINE_DIR:
    timeline.install_worker()


@event.listens_for(Engine, "before_cursor_execute")
def _statement(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
    _counts[statement.split(None, 1)[0].upper()] += 1


@event.listens_for(Engine, "commit")
def _commit(_conn: Any) -> None:
    _counts["COMMIT"] += 1


@event.listens_for(Pool, "checkout")
def _checkout(*_: Any) -> None:
    # With pool_pre_ping each checkout costs a round trip of its own.
    _counts["checkout"] += 1


@worker_process_shutdown.connect  # prefork children
@worker_shutdown.connect  # the main process (threads pool)
def _write(**_: Any) -> None:
    path = Path(os.environ["BENCH_COUNTS_DIR"]) / f"{os.getpid()}.json"
    path.write_text(json.dumps(_counts))
    if _TIMELINE_DIR:
        timeline.write(Path(_TIMELINE_DIR))
