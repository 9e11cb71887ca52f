"""The run's Celery workers (`celery -A worker worker`): start, kill, notice exits, stop.

Faults and the supervisor act on them from their own threads, so every change
to the set of running workers goes through one lock; a fault that needs a
running worker waits for one (the supervisor may be restarting them all).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from pathlib import Path

from bench.chaos.processes import kill_group, spawn, stop_group, wait_until


class Workers:
    """Celery workers, each the leader of its own process group. Thread-safe."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.running: list[tuple[str, subprocess.Popen[bytes]]] = []  # (node name, process)
        self.started = 0
        self._changed = threading.Condition()

    def start(self) -> None:
        with self._changed:
            n, self.started = self.started, self.started + 1
        name, log_file = f"chaos-{n}", self.logs / f"worker-{n}.log"
        process = spawn(
            [sys.executable, "-m", "celery", "-A", "worker", "worker", "-P", "prefork",
             "-c", "2", "-Q", "mail.critical,mail", "-n", f"{name}@%h",
             "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "INFO"],
            self.env, log_file,
        )  # fmt: skip

        def ready() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"worker exited with {process.returncode}: see {log_file}")
            return " ready." in log_file.read_text(errors="replace")

        if not wait_until(ready, 90, poll=0.2):
            raise RuntimeError(f"worker not ready after 90 s: see {log_file}")
        with self._changed:
            self.running.append((name, process))
            self._changed.notify_all()

    def oldest(self, wait_seconds: float = 60.0) -> str:
        """The longest-running worker, waiting (bounded) while none runs."""
        with self._changed:
            if not self._changed.wait_for(lambda: bool(self.running), wait_seconds):
                raise RuntimeError(f"no worker running after {wait_seconds:g} s of waiting")
            return self.running[0][0]

    def is_running(self, name: str) -> bool:
        with self._changed:
            return name in dict(self.running)

    def kill(self, name: str) -> int:
        """SIGKILL the worker and its pool processes; returns its pid."""
        with self._changed:
            process = dict(self.running)[name]
            self.running.remove((name, process))
        kill_group(process)
        return process.pid

    def exited(self) -> list[tuple[str, int]]:
        """(name, exit code) of the workers that ended on their own, now forgotten."""
        with self._changed:
            gone = [(name, p) for name, p in self.running if p.poll() is not None]
            for entry in gone:
                self.running.remove(entry)
        for _, process in gone:
            kill_group(process)  # whatever of its pool is left
        return [(name, int(process.returncode)) for name, process in gone]

    def stop(self) -> None:
        with self._changed:
            running, self.running = self.running, []
        for _, process in running:
            process.send_signal(signal.SIGTERM)
        for _, process in running:
            stop_group(process)


def node_of(worker: str) -> str:
    """The node name in a jobs/attempts ``worker`` value (``chaos-3@host/1234`` → ``chaos-3``)."""
    return worker.split("@", 1)[0]
