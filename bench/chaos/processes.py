"""Subprocesses in process groups, waiting on conditions, and threads that re-raise.

A SIGKILL must take a Celery worker's pool processes with it, and a failure in
a background thread must fail the run, not vanish with the thread.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).parents[2]


def wait_until(condition: Callable[[], bool], seconds: float, poll: float = 0.05) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(poll)
    return True


class ReraisingThread(threading.Thread):
    """A thread whose exception ``join()`` re-raises in the caller."""

    def __init__(self, target: Callable[[], None]) -> None:
        super().__init__(daemon=True)
        self._work = target
        self._error: BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            self._work()
        except BaseException as exc:
            self._error = exc

    def join(self, timeout: float | None = None) -> None:
        super().join(timeout)
        if self._error is not None:
            raise self._error


def spawn(argv: list[str], env: dict[str, str], log_file: Path) -> subprocess.Popen[bytes]:
    """A subprocess in its own process group, so one killpg takes its children too."""
    with log_file.open("ab") as out:
        return subprocess.Popen(
            argv, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the group and return once none of it runs: not the leader alone.

    A pool child on the other core can finish a few more statements after the
    leader is gone; what the harness reads next (the jobs the worker left
    claimed) must come after the child's last one.
    """
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(10)
    deadline = time.monotonic() + 10
    while _running_in_group(process.pid) and time.monotonic() < deadline:
        time.sleep(0.005)


def _running_in_group(pgid: int) -> bool:
    """Whether a process of this group still runs (zombies waiting to be reaped do not)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        state, pgrp = fields[0], int(fields[2])
        if pgrp == pgid and state not in ("Z", "X"):
            return True
    return False


def stop_group(process: subprocess.Popen[bytes], seconds: float = 30.0) -> None:
    """SIGTERM (a warm shutdown), then SIGKILL whatever of the group is left."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(seconds)
    kill_group(process)
