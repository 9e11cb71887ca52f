"""Per-job timestamps and the pauses around them, for the latency runs of the benchmark.

Each process of a paced run (the producer, the worker's parent, its pool
children) notes, with ``time.time()``, when each job passes a point of its
way, and when the process itself was busy with something else:

    producer  call → store (add_job: validate, INSERT, the producer's commit)
              → stored → published (Celery's after_task_publish)
    parent    received (the consumer took the message off the broker and
              hands it to the pool)
    child     prerun (a pool child starts the task) → claim → claimed
    (store)   the attempt's started_at and ended_at: the send

    pauses    gc (every collection, its generation), lease (a renewal by the
              lease thread), commit (a database commit over COMMIT_MS: a
              SQLite WAL checkpoint runs inside one), statement (a statement
              over STATEMENT_MS: a lock wait)

Everything is hooked from outside mailpipe's code (Celery signals, wrappers
installed on classes, ``gc.callbacks``), only in processes that ask for it:
production code paths carry none of it. A worker process writes its notes at
exit to ``$BENCH_TIMELINE_DIR/<pid>.timeline.json``; the producer's stay in
memory (``PRODUCER``) until the run reads them.
"""

from __future__ import annotations

import functools
import gc
import json
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

COMMIT_MS = 3.0
STATEMENT_MS = 3.0


@dataclass
class Timeline:
    """One process's notes: job → {point: time}, and its pauses (kind, start, end, detail)."""

    marks: dict[str, dict[str, float]] = field(default_factory=dict)
    pauses: list[tuple[str, float, float, str]] = field(default_factory=list)
    _guard: threading.Lock = field(default_factory=threading.Lock)

    def mark(self, job_id: str, point: str, at: float | None = None) -> None:
        """The first time a job passes ``point`` (a retried or taken-along job's first)."""
        when = time.time() if at is None else at
        with self._guard:
            self.marks.setdefault(job_id, {}).setdefault(point, when)

    def pause(self, kind: str, start: float, end: float, detail: str = "") -> None:
        # No lock: a gc callback runs wherever a collection starts, also inside this
        # object's own locked blocks (a lock here deadlocked). list.append is atomic.
        self.pauses.append((kind, start, end, detail))

    def as_json(self) -> dict[str, Any]:
        """A copy of the notes so far: clearing them later leaves it whole."""
        with self._guard:
            marks = {job: dict(points) for job, points in self.marks.items()}
        return {"pid": os.getpid(), "marks": marks, "pauses": list(self.pauses)}

    def clear(self) -> None:
        with self._guard:
            self.marks.clear()
        self.pauses.clear()


CURRENT = Timeline()  # this process's (after a fork, the child starts its own: see reset)


def reset() -> None:
    """A forked child's notes are its own: drop what the parent had noted."""
    CURRENT.clear()


# -- the hooks ------------------------------------------------------------------------

_gc_started: list[float] = []


def _gc_callback(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _gc_started[:] = [time.time()]
    elif _gc_started:
        CURRENT.pause("gc", _gc_started[0], time.time(), f"gen{info.get('generation')}")


def _timed(kind: str, slower_than_ms: float, method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.time()
        try:
            return method(*args, **kwargs)
        finally:
            end = time.time()
            if (end - start) * 1000 >= slower_than_ms:
                CURRENT.pause(kind, start, end)

    return timed


def _claims(method: Callable[..., Any]) -> Callable[..., Any]:
    """A claim call: its start for the job asked for, its end for every job it took."""

    @functools.wraps(method)
    def claim(self: Any, job_ids: Any, *args: Any, **kwargs: Any) -> Any:
        start = time.time()
        jobs = method(self, job_ids, *args, **kwargs)
        end = time.time()
        for job in jobs:
            CURRENT.mark(job.id, "claim", start)
            CURRENT.mark(job.id, "claimed", end)
        return jobs

    return claim


_installed: list[Callable[[], None]] = []


def _wrap(
    owner: Any, name: str, wrapper: Callable[[Callable[..., Any]], Callable[..., Any]]
) -> None:
    original = getattr(owner, name)
    setattr(owner, name, wrapper(original))
    _installed.append(lambda: setattr(owner, name, original))


def install_common() -> None:
    """Pauses (gc, long commits and statements) and the store's claim and add_job."""
    from sqlalchemy.engine.default import DefaultDialect

    from worker.store import Store

    if _installed:
        return
    gc.callbacks.append(_gc_callback)
    _installed.append(lambda: gc.callbacks.remove(_gc_callback))
    _wrap(DefaultDialect, "do_commit", functools.partial(_timed, "commit", COMMIT_MS))
    _wrap(DefaultDialect, "do_execute", functools.partial(_timed, "statement", STATEMENT_MS))
    _wrap(Store, "claim_many", _claims)

    def add_job(method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def timed(self: Any, job: Any, *args: Any, **kwargs: Any) -> Any:
            start = time.time()
            result = method(self, job, *args, **kwargs)
            CURRENT.mark(result[0], "store", start)
            CURRENT.mark(result[0], "stored")
            return result

        return timed

    _wrap(Store, "add_job", add_job)


def uninstall() -> None:
    while _installed:
        _installed.pop()()


def _first_arg(args: Sequence[Any] | None) -> str | None:
    return args[0] if args and isinstance(args[0], str) else None


def on_published(sender: Any = None, body: Any = None, **_: Any) -> None:
    """Celery's after_task_publish, in the producer: the message left for the broker."""
    if sender == "mailpipe.send_notification" and body:
        job_id = _first_arg(body[0])
        if job_id:
            CURRENT.mark(job_id, "published")


def install_producer() -> None:
    from celery.signals import after_task_publish

    install_common()
    after_task_publish.connect(on_published, weak=False)
    _installed.append(lambda: after_task_publish.disconnect(on_published))


def install_worker() -> None:
    """In ``celery -A bench.run.instrumented``: the parent's receipt, the child's start, leases."""
    from celery.signals import task_prerun, task_received, worker_process_init

    from worker.delivery.leases import Leases

    install_common()

    def received(request: Any = None, **_: Any) -> None:
        job_id = _first_arg(getattr(request, "args", None))
        if job_id and request.name == "mailpipe.send_notification":
            CURRENT.mark(job_id, "received")

    def prerun(task: Any = None, args: Any = None, **_: Any) -> None:
        job_id = _first_arg(args)
        if job_id and task.name == "mailpipe.send_notification":
            CURRENT.mark(job_id, "prerun")

    task_received.connect(received, weak=False)
    task_prerun.connect(prerun, weak=False)
    worker_process_init.connect(lambda **_: reset(), weak=False)
    _wrap(Leases, "renew_now", functools.partial(_timed, "lease", 0.0))


def write(directory: Path) -> None:
    (directory / f"{os.getpid()}.timeline.json").write_text(json.dumps(CURRENT.as_json()))
