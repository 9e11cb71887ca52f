"""Where a worker's CPU time goes: py-spy on the worker during a drain, stacks grouped by step.

    python -m bench.run --profile    (needs py-spy: pip install -e '.[bench]')

py-spy samples every process of the worker (the prefork parent and its
children) at a fixed rate, and only while they run on a CPU, so samples per
second of run time are CPU time. A child's sample goes to the first step, in
the order below, whose frame appears in its stack.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

PARENT = "Celery parent: fetch from the broker, hand to a child, ack"
# (step, a frame that marks it), most specific first.
STEPS = [
    ("record the attempt (store.record_attempt)", "record_attempt"),  # and record_attempts
    ("claim the job (store.claim)", "(worker/store/claims.py"),  # the rest of claims.py
    ("rate limit (Redis)", "take (worker/delivery/rate_limit.py"),
    ("send mark (Redis)", "mark (worker/delivery/sent_marks.py"),
    ("metrics (Redis)", "record (worker/metrics.py"),
    ("SMTP transaction (pool, session, smtplib)", "(worker/transport/smtp/pool.py"),
    ("logging", "(logging/__init__.py"),
    ("rest of the delivery and the task", "(tasks/jobs.py"),
    ("Celery in the child: trace, signals, result", "trace_task (celery/app/trace.py"),
    ("Celery in the child: pipe to and from the parent", "billiard/"),
]
RATE = 200  # samples per second


def py_spy() -> str | None:
    """py-spy's path: beside this interpreter (a virtualenv), else on PATH."""
    here = Path(sys.executable).parent
    return shutil.which("py-spy", path=f"{here}{os.pathsep}{os.environ.get('PATH', os.defpath)}")


class Recorder:
    """``py-spy record`` on a running worker and its children, until stop()."""

    def __init__(self, pid: int, output: Path) -> None:
        self.output = output
        self.process = subprocess.Popen(
            [
                py_spy() or "py-spy",
                "record",
                *("--pid", str(pid), "--subprocesses", "--nonblocking"),
                *("--format", "raw", "--rate", str(RATE), "--output", str(output)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(self) -> Counter[str]:
        self.process.send_signal(signal.SIGINT)
        self.process.wait(60)
        return steps(self.output.read_text())


def steps(raw: str) -> Counter[str]:
    """Samples per step, from py-spy's raw output: ``process …;[process …;]frame;… count``."""
    counts: Counter[str] = Counter()
    for line in raw.splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        frames = stack.split(";")
        if not (len(frames) > 1 and frames[1].startswith("process ")):
            counts[PARENT] += int(n)  # a child's stack starts with its parent's name
            continue
        counts[next((name for name, frame in STEPS if frame in stack), "other")] += int(n)
    return counts


def table(counts: Counter[str], *, messages: int) -> list[str]:
    """CPU milliseconds per message, by step."""
    total = sum(counts.values())
    if not total:
        return ["(py-spy recorded nothing)"]
    lines = ["| step | CPU ms per message | share |", "| --- | --- | --- |"]
    for name in [name for name, _ in STEPS] + ["other", PARENT]:
        if counts[name]:
            ms = counts[name] / RATE / messages * 1000
            lines.append(f"| {name} | {ms:.2f} | {counts[name] / total:.0%} |")
    lines.append(f"| total | {total / RATE / messages * 1000:.2f} | 100% |")
    return lines
