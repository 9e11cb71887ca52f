"""The Celery workers a benchmark run drains with: start, stop, peak memory, pool flags.

Every variant (mailpipe and both baselines) runs the same kind of worker with
the same flags, so starting, stopping and measuring them lives in one place.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).parents[2]


def wait_for(condition: Callable[[], bool], seconds: float = 60.0, what: str = "") -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not reached in {seconds}s: {what}")
        time.sleep(0.02)


@dataclass(frozen=True)
class Pool:
    """A worker's execution pool: ``-P kind -c concurrency``."""

    kind: str
    concurrency: int

    def __str__(self) -> str:
        return f"{self.kind} {self.concurrency}"


def pool_args(pool: Pool) -> list[str]:
    return ["-P", pool.kind, "-c", str(pool.concurrency)]


def start_worker(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                *args,
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "-l",
                "INFO",
            ],
            env=env,
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    wait_for(lambda: " ready." in log.read_text(errors="replace"), 60, f"worker ready ({log})")
    return worker


def stop_worker(worker: subprocess.Popen[bytes]) -> None:
    worker.send_signal(signal.SIGTERM)
    try:
        worker.wait(30)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait(5)


@dataclass(frozen=True)
class WorkerRss:
    """Peak resident memory (VmHWM, MiB) of a worker's main process and each pool child.

    Each process's own peak, pages shared after the fork counted in each: what
    ``ps`` and a container's per-process view show. ``total`` is their sum.
    ``pss_total``: their proportional set sizes summed when measured (each shared
    page split among the processes sharing it), what the machine actually spends.
    """

    main: float
    children: tuple[float, ...]
    pss_total: float = 0.0

    @property
    def total(self) -> float:
        return self.main + sum(self.children)


def worker_rss(root: int) -> WorkerRss:
    """The peak RSS of worker ``root`` and its children (the prefork pool), read from /proc."""
    main, children, pss = 0.0, [], 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().split(") ")[1].split()
            pid = int(stat.parent.name)
            if pid != root and int(fields[1]) != root:
                continue
            status = (stat.parent / "status").read_text().splitlines()
            kib = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
            rollup = (stat.parent / "smaps_rollup").read_text().splitlines()
            pss += next(int(line.split()[1]) for line in rollup if line.startswith("Pss:")) / 1024
        except (OSError, IndexError, ValueError, StopIteration):
            continue
        if pid == root:
            main = kib / 1024
        else:
            children.append(kib / 1024)
    return WorkerRss(main, tuple(sorted(children, reverse=True)), pss)
