"""The supervisor: restarts a worker that exits on its own, and keeps count of it.

In production systemd or Kubernetes would; without it, a worker lost to the
broker outage would pass for a job lost by mailpipe. Each such exit is an
unplanned exit, and the run fails on any (a Celery worker must ride out a
broker restart).
"""

from __future__ import annotations

import threading
import time

from bench.chaos.faults import Chaos
from bench.chaos.processes import ReraisingThread
from bench.chaos.workers import Workers

POLL_SECONDS = 1.0


class Supervisor:
    """Restarts a worker that exits on its own, as systemd or Kubernetes would; notes it."""

    def __init__(self, workers: Workers, chaos: Chaos) -> None:
        self.workers = workers
        self.chaos = chaos
        self.exits: list[str] = []  # "chaos-3 (exit code 1) at +55.0 s"
        self._stop = threading.Event()
        self._thread = ReraisingThread(self._watch)

    def _watch(self) -> None:
        while not self._stop.wait(POLL_SECONDS):
            for name, code in self.workers.exited():
                when = time.time() - self.chaos.started
                self.exits.append(f"{name} (exit code {code}) at +{when:.1f} s")
                self.chaos.worker_exited(name, code, noticed_within=POLL_SECONDS)
                self.workers.start()
                self.chaos.note("restarted worker ready")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
