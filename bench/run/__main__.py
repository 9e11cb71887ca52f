"""`python -m bench.run`: the command line, then measure, print and write bench/RESULTS.md.

The full run's options are the Makefile's; --quick is the test suite's.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from pathlib import Path

import bench.run
from bench.run import profiling
from bench.run.intake_runs import require_hey
from bench.run.plan import QUICK, Plan, measure, measure_latency, measure_wan, planned_runs
from bench.run.processes import REPO
from bench.run.progress import Progress
from bench.run.report import latency_section, report, wan_section
from bench.run.results_json import results_json
from tests.support import postgres_problem


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run", description=bench.run.__doc__.splitlines()[0]
    )
    parser.add_argument("--messages", type=int, default=Plan.messages)
    parser.add_argument("--repetitions", type=int, default=Plan.repetitions)
    parser.add_argument("--quick", action="store_true", help="tiny run (the test suite's)")
    parser.add_argument("--profile", action="store_true", help="one more drain under py-spy")
    parser.add_argument("--output", type=Path, default=REPO / "bench" / "RESULTS.md")
    parser.add_argument(
        "--wan-only", action="store_true", help="only the WAN section, printed (no file written)"
    )
    parser.add_argument(
        "--latency-only",
        action="store_true",
        help="only the latency section (each store's drain, then paced at half and a quarter "
        "of it), printed (no file written)",
    )
    args = parser.parse_args()
    if args.wan_only:
        plan = Plan(repetitions=args.repetitions)
        progress = Progress(plan.repetitions * 4)
        with tempfile.TemporaryDirectory() as tmpdir:
            wan = measure_wan(plan, Path(tmpdir), progress)
        print("\n".join(wan_section(plan, wan)))
        return
    if args.latency_only:
        plan = Plan(messages=args.messages, repetitions=args.repetitions)
        stores = _stores(quick=False)
        progress = Progress(planned_runs(plan, stores, latency_only=True))
        with tempfile.TemporaryDirectory() as tmpdir:
            results = measure_latency(plan, stores, Path(tmpdir), progress)
        print("\n".join(latency_section(results)))
        return
    require_hey()  # before anything starts: the intake variant needs it
    plan = QUICK if args.quick else Plan(messages=args.messages, repetitions=args.repetitions)
    if args.profile:
        if profiling.py_spy() is None:
            parser.error("--profile needs py-spy: pip install -e '.[bench]'")
        plan = dataclasses.replace(plan, profile=True)
    stores = _stores(quick=args.quick)
    progress = Progress(planned_runs(plan, stores))
    with tempfile.TemporaryDirectory() as tmpdir:
        results = measure(plan, stores, Path(tmpdir), progress)
    text = report(plan, results, " ".join(["python -m bench.run", *sys.argv[1:]]))
    print(text)
    figures = results_json(results)
    if args.quick:  # printed, so the test suite reads it; a quick run writes no file
        print("results.json: " + json.dumps(figures))
    else:
        args.output.write_text(text)
        args.output.with_name("results.json").write_text(json.dumps(figures, indent=2) + "\n")


def _stores(*, quick: bool) -> list[str]:
    # The quick run leaves PostgreSQL to the test suite's own store tests.
    postgres = not quick and postgres_problem() is None
    return ["sqlite"] + (["postgresql"] if postgres else [])


if __name__ == "__main__":
    main()
