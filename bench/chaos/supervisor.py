"""The supervisor: restarts a worker that exits on its own and notes it on the timeline.

In production systemd or Kubernetes would; without it, a worker lost to the
broker outage would pass for a job lost by mailpipe.
"""

from __future__ import annotations

import threading

from bench.chaos.faults import Chaos
from bench.chaos.processes import ReraisingThread
from bench.chaos.workers import Workers


class Supervisor:
    """Restarts a worker that exits on its own, as systemd or Kubernetes would; notes it.

    Not chaos of ours: a Celery worker can die of a broker outage by itself.
    """

    def __init__(self, workers: Workers, chaos: Chaos) -> None:
        self.workers = workers
        self.chaos = chaos
        self.restarts = 0
        self._stop = threading.Event()
        self._thread = ReraisingThread(self._watch)

    def _watch(self) -> None:
        while not self._stop.wait(1.0):
            for name, code in self.workers.exited():
                self.restarts += 1
                what = f"worker {name} exited on its own (exit code {code}): restarting it"
                self.chaos.note(what, crash=True)
                self.workers.start()
                self.chaos.note("restarted worker ready")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
