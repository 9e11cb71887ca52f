"""Where the slowest 1% of a latency run wait: their timestamps split into steps, and the
pauses (gc, lease renewals, long commits and statements) that overlap their wait.

Read from the notes bench/run/timeline.py leaves (the producer's in memory, the
worker's files) and from the attempts' own started_at and ended_at.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# (step, from point, to point), in the order a job passes them.
STEPS = [
    ("notify: check and build", "call", "store"),
    ("producer: INSERT and commit", "store", "stored"),
    ("producer: publish", "stored", "published"),
    ("broker hop, prefetch (until the worker's parent takes it)", "published", "received"),
    ("hand-over to a pool child", "received", "prerun"),
    ("task start to claim", "prerun", "claim"),
    ("claim: read and write", "claim", "claimed"),
    ("claimed to send start (limits, token, session)", "claimed", "send"),
    ("send (SMTP transaction)", "send", "end"),
]
POINTS = ["call", "store", "stored", "published", "received", "prerun", "claim", "claimed"]
PAUSE_KINDS = ["gc gen2", "gc gen0/1", "lease", "commit", "statement"]


@dataclass
class Pause:
    kind: str  # one of PAUSE_KINDS
    process: str  # producer, parent or child
    start: float
    end: float


@dataclass
class TailSplit:
    """One latency run: mean ms per step, for the slowest 1% and for every job."""

    jobs: int  # in the slowest 1%
    all_jobs: int
    slowest: dict[str, float]  # step → mean ms
    everyone: dict[str, float]
    taken_along: int  # of the slowest, claimed by another job's task
    # kind → (slowest jobs whose wait a pause of that kind overlapped, mean ms overlapped)
    pauses: dict[str, tuple[int, float]] = field(default_factory=dict)
    # process → kind → pauses in the whole run, and their total ms
    pause_totals: dict[str, dict[str, tuple[int, float]]] = field(default_factory=dict)
    slowest_ids: list[str] = field(default_factory=list)


def _epoch(value: datetime) -> float:
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


def load(directory: Path) -> list[dict[str, Any]]:
    return [json.loads(path.read_text()) for path in directory.glob("*.timeline.json")]


def _kind(kind: str, detail: str) -> str:
    if kind == "gc":
        return "gc gen2" if detail == "gen2" else "gc gen0/1"
    return kind


def split(
    producer: dict[str, Any],
    workers: list[dict[str, Any]],
    attempts: Iterable[tuple[str, datetime, datetime]],
) -> TailSplit:
    """``attempts``: (job id, started_at, ended_at), the first attempt of each job."""
    marks: dict[str, dict[str, float]] = {}
    pauses: list[Pause] = []
    for role, notes in [("producer", producer), *(("worker", w) for w in workers)]:
        process = role
        if role == "worker":
            received = any("received" in m for m in notes["marks"].values())
            process = "parent" if received else "child"
        for job_id, points in notes["marks"].items():
            mine = marks.setdefault(job_id, {})
            for point, at in points.items():
                mine[point] = min(at, mine.get(point, at))
        for kind, start, end, detail in notes["pauses"]:
            pauses.append(Pause(_kind(kind, detail), process, start, end))
    timed: dict[str, dict[str, float]] = {}
    for job_id, started, ended in attempts:
        points = marks.get(job_id, {})
        if not all(p in points for p in ("call", "store", "claim", "claimed")):
            continue
        timed[job_id] = _ordered({**points, "send": _epoch(started), "end": _epoch(ended)})
    ranked = sorted(timed, key=lambda j: timed[j]["end"] - timed[j]["store"])
    slowest = ranked[-max(1, len(ranked) // 100) :]
    return TailSplit(
        jobs=len(slowest),
        all_jobs=len(ranked),
        slowest=_means(timed[j] for j in slowest),
        everyone=_means(timed.values()),
        taken_along=sum(1 for j in slowest if timed[j].get("along")),
        pauses=_overlaps([timed[j] for j in slowest], pauses),
        pause_totals=_totals(pauses),
        slowest_ids=slowest,
    )


def _ordered(points: dict[str, float]) -> dict[str, float]:
    """Each point no later than the next. A job taken along by another job's task was
    claimed before its own message arrived: its missing or later points take the claim's."""
    out = dict(points)
    along = "received" not in out or "prerun" not in out or out["prerun"] > out["claim"]
    if along:
        out["along"] = 1.0
    for point in ("published", "received", "prerun"):
        out[point] = min(out.get(point, out["claim"]), out["claim"])
    later = out["end"]
    for point in reversed([*POINTS, "send"]):
        later = out[point] = min(out[point], later)
    return out


def _means(jobs: Iterable[dict[str, float]]) -> dict[str, float]:
    rows = list(jobs)
    return {
        name: statistics.fmean((j[b] - j[a]) * 1000 for j in rows) if rows else 0.0
        for name, a, b in STEPS
    }


def _overlaps(jobs: list[dict[str, float]], pauses: list[Pause]) -> dict[str, tuple[int, float]]:
    """Per kind: how many of ``jobs`` a pause overlapped between their store and their send."""
    out: dict[str, tuple[int, float]] = {}
    for kind in PAUSE_KINDS:
        overlapped = []
        for job in jobs:
            ms = sum(
                max(0.0, min(p.end, job["send"]) - max(p.start, job["store"])) * 1000
                for p in pauses
                if p.kind == kind
            )
            if ms > 0:
                overlapped.append(ms)
        out[kind] = (len(overlapped), statistics.fmean(overlapped) if overlapped else 0.0)
    return out


def _totals(pauses: list[Pause]) -> dict[str, dict[str, tuple[int, float]]]:
    out: dict[str, dict[str, tuple[int, float]]] = {}
    for p in pauses:
        n, ms = out.setdefault(p.process, {}).get(p.kind, (0, 0.0))
        out[p.process][p.kind] = (n + 1, ms + (p.end - p.start) * 1000)
    return out


def table(runs: dict[str, TailSplit]) -> list[str]:
    """Steps down, runs across: the slowest 1%'s mean ms, and every job's beside it."""
    names = list(runs)
    lines = [
        "| step (mean ms: slowest 1% / all jobs) | " + " | ".join(names) + " |",
        "| --- |" + " --- |" * len(names),
    ]
    for step, _, _ in STEPS:
        cells = [f"{runs[n].slowest[step]:.1f} / {runs[n].everyone[step]:.1f}" for n in names]
        lines.append(f"| {step} | " + " | ".join(cells) + " |")
    total = [
        f"{sum(runs[n].slowest.values()):.1f} / {sum(runs[n].everyone.values()):.1f}" for n in names
    ]
    lines.append("| total, call to accepted | " + " | ".join(total) + " |")
    lines.append(
        "| slowest 1% (of jobs timed); taken along by another job's task | "
        + " | ".join(
            f"{runs[n].jobs} (of {runs[n].all_jobs}); {runs[n].taken_along}" for n in names
        )
        + " |"
    )
    for kind in PAUSE_KINDS:
        cells = [f"{runs[n].pauses[kind][0]} jobs, {runs[n].pauses[kind][1]:.1f} ms" for n in names]
        lines.append(f"| overlapped by a {kind} pause (any process) | " + " | ".join(cells) + " |")
    return lines


def totals_lines(runs: dict[str, TailSplit]) -> list[str]:
    """Every pause of each run, by process and kind: how many, and their total ms."""
    lines = []
    for name, run in runs.items():
        parts = [
            f"{process} {kind} {n} ({ms:.0f} ms)"
            for process, kinds in sorted(run.pause_totals.items())
            for kind, (n, ms) in sorted(kinds.items())
        ]
        lines.append(f"- {name}: " + (", ".join(parts) or "none"))
    return lines
