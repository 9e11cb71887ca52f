"""The benchmark's progress lines: each run announced, its figure, and the time left."""

from __future__ import annotations

import io

from bench.run.plan import QUICK, Plan, planned_runs
from bench.run.progress import Progress
from tests.fakes.clock import Clock


def test_each_run_prints_a_start_and_an_end_line_with_its_figure_and_the_time_left() -> None:
    out, clock = io.StringIO(), Clock(100.0)
    progress = Progress(3, out=out, clock=clock)

    def ten_seconds() -> int:
        clock.now += 10
        return 42

    assert progress.run("first", ten_seconds, lambda n: f"{n} msg/s") == 42
    progress.run("second", ten_seconds, lambda n: f"{n} msg/s")
    progress.run("third", ten_seconds, lambda n: f"{n} msg/s")
    assert out.getvalue().splitlines() == [
        "bench [1/3] first ...",
        "bench [1/3] first: 42 msg/s (10 s); about 0 min 20 s left (2 runs)",
        "bench [2/3] second ...",
        "bench [2/3] second: 42 msg/s (10 s); about 0 min 10 s left (1 runs)",
        "bench [3/3] third ...",
        "bench [3/3] third: 42 msg/s (10 s); done",
    ]


def test_the_estimate_is_the_mean_run_so_far_times_the_runs_to_come() -> None:
    clock = Clock(100.0)
    progress = Progress(10, out=io.StringIO(), clock=clock)
    assert progress.left() == "time left unknown"

    def ninety_seconds() -> None:
        clock.now += 90

    progress.run("slow", ninety_seconds, lambda _: "")
    assert progress.left() == "about 13 min 30 s left (9 runs)"


def test_the_planned_total_counts_every_kind_of_run() -> None:
    # Full run, two stores, profiled: local 3x6, scaling 3x2x3, backlog 1, intake and
    # relay 3x(3+3), py-spy 1, latency 4, tokens 3, WAN 3x4.
    full = Plan(profile=True)
    assert planned_runs(full, ["sqlite", "postgresql"]) == 18 + 18 + 1 + 18 + 1 + 4 + 3 + 12
    assert planned_runs(full, ["sqlite", "postgresql"], latency_only=True) == 3 * 2 + 4
    assert planned_runs(QUICK, ["sqlite"]) == 5 + 2 + 1 + 6 + 0 + 2 + 1 + 4
