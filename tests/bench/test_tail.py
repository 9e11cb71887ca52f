"""The split of the slowest 1%'s wait into steps, from per-job timestamps (bench/run/tail.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from bench.run import tail


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _notes(
    jobs: int, slow: str, slow_wait: float
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], list[Any]]:
    """``jobs`` jobs 1 s apart, each 1 ms per step; ``slow`` waits ``slow_wait`` s for a child."""
    producer: dict[str, Any] = {"marks": {}, "pauses": []}
    parent: dict[str, Any] = {"marks": {}, "pauses": []}
    child: dict[str, Any] = {"marks": {}, "pauses": []}
    attempts = []
    for i in range(jobs):
        job, t = f"j{i}", 1000.0 + i
        hand_over = slow_wait if job == slow else 0.001
        producer["marks"][job] = {
            "call": t,
            "store": t + 0.001,
            "stored": t + 0.002,
            "published": t + 0.003,
        }
        parent["marks"][job] = {"received": t + 0.004}
        prerun = t + 0.004 + hand_over
        child["marks"][job] = {"prerun": prerun, "claim": prerun + 0.001, "claimed": prerun + 0.002}
        attempts.append((job, _at(prerun + 0.003), _at(prerun + 0.004)))
    return producer, parent, child, attempts


def test_the_slowest_job_shows_its_wait_in_the_step_that_owns_it() -> None:
    producer, parent, child, attempts = _notes(200, "j7", 0.1)
    child["pauses"].append(["gc", 1007.0045, 1007.05, "gen2"])
    child["pauses"].append(["lease", 1150.0, 1150.01, ""])  # far from every slow job's wait
    split = tail.split(producer, [parent, child], attempts)
    assert split.jobs == 2 and split.all_jobs == 200
    assert "j7" in split.slowest_ids
    # j7's 100 ms and one other job's 1 ms, averaged over the two slowest.
    assert split.slowest["hand-over to a pool child"] == pytest.approx(50.5)
    assert split.everyone["claim: read and write"] == pytest.approx(1.0)
    assert split.pauses["gc gen2"][0] == 1
    assert split.pauses["gc gen2"][1] == pytest.approx(45.5)
    assert split.pauses["lease"] == (0, 0.0)
    assert split.pause_totals["child"]["lease"][0] == 1
    assert split.taken_along == 0


def test_a_job_taken_along_by_another_jobs_task_counts_its_wait_before_the_claim() -> None:
    producer, parent, child, attempts = _notes(100, "none", 0.0)
    # j5 was claimed by j4's busy task right after it was published, before its own
    # message reached the worker's parent; its send then took 500 ms (the slowest).
    child["marks"]["j5"] |= {"claim": 1005.0035, "claimed": 1005.0036}
    attempts[5] = ("j5", _at(1005.0037), _at(1005.5))
    split = tail.split(producer, [parent, child], attempts)
    assert split.slowest_ids == ["j5"] and split.taken_along == 1
    # Its own message's hand-over came after the claim: no part of its wait.
    assert split.slowest["hand-over to a pool child"] == 0.0
    assert split.slowest[
        "broker hop, prefetch (until the worker's parent takes it)"
    ] == pytest.approx(0.5)
    assert split.slowest["send (SMTP transaction)"] == pytest.approx(496.3)
    assert all(ms >= 0 for ms in split.everyone.values())
    lines = tail.table({"sqlite, half of the peak": split})
    assert len(lines) == 2 + len(tail.STEPS) + 2 + len(tail.PAUSE_KINDS)
