"""The run's summary lines (printed) and bench/CHAOS.md (the full run only).

The test suite reads the printed lines, so their wording is part of the contract.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
from collections import Counter
from dataclasses import dataclass

from bench.chaos.checks import Verdict
from bench.chaos.faults import Chaos
from bench.chaos.plan import (
    BEAT_INTERVAL_SECONDS,
    RECOVERY_SETTINGS,
    REDIS_DOWN_SECONDS,
    TOKEN_LIFETIME_SECONDS,
    Plan,
)
from bench.chaos.processes import REPO

OUTPUT = REPO / "bench" / "CHAOS.md"


@dataclass(frozen=True)
class Observed:
    """What the run saw besides the verdict, for the summary."""

    plan: Plan
    chaos: Chaos
    tokens: Counter[str]
    sink: Counter[str]
    accepted: int
    unpublished: int
    unpublished_not_final: int
    notify_retries: int
    workers_died: int  # on their own, and restarted
    republished: int
    token_lock_waits: int
    seconds_to_final: list[float]  # per final job, created → delivered or failed, sorted
    seconds: float
    enqueue_seconds: float

    def latency(self, percent: int) -> float:
        values = self.seconds_to_final or [0.0]
        return values[min(len(values) - 1, round(percent / 100 * (len(values) - 1)))]


def summary(o: Observed, v: Verdict) -> list[str]:
    reasons = "all with a recorded reason"
    if v.failed_without_reason:
        reasons = f"{len(v.failed_without_reason)} without a recorded reason"
    lines = [
        f"chaos: {o.plan.jobs} jobs, {o.plan.profiles} profiles, "
        f"{o.chaos.worker_kills} worker kills, {o.chaos.redis_restarts} redis restart, "
        f"token 503s {o.tokens['503']}, 429s {o.tokens['429']}, "
        f"rcpt 451s {o.sink['rcpt_451']}, dropped after DATA {o.sink['dropped_after_data']}",
        f"delivered {v.delivered}, failed {v.failed} ({reasons}), lost {v.lost}",
        f"duplicates at the sink: {v.duplicates} "
        f"(explained by the crash-after-250 window: {v.explained})",
        f"attempts recorded: {v.attempts} for {v.delivered + v.failed + len(v.not_final)} jobs, "
        + (
            "every job's attempt_count matches its attempts rows"
            if not v.attempt_problems
            else f"{len(v.attempt_problems)} problems"
        ),
        "secrets in logs: "
        + ("none" if not v.leaks else f"{len(v.leaks)} FOUND")
        + " (worker, beat and harness logs, every Redis value, the AOF, the database)",
        f"recovery: enqueue failed after store {o.unpublished} (broker down; "
        f"{o.unpublished - o.unpublished_not_final} of them final via the sweeper), "
        f"{o.chaos.caught_mid_send} jobs caught mid-send by the kills, sweeper republished "
        f"{o.republished}, notify retried {o.notify_retries}, workers that died on their own "
        f"{o.workers_died} (restarted), {o.chaos.workers.started} workers started",
        f"token endpoint: {o.tokens['requests']} requests, {o.tokens['issued']} tokens issued, "
        f"attempts that gave up waiting for another process's refresh {o.token_lock_waits}; "
        f"sink: {o.accepted} messages kept, {o.sink['rcpt_550']} RCPTs refused 550, "
        f"{o.sink['auth_rejected']} AUTH rejected",
        f"created to final: p50 {o.latency(50):.1f} s, p99 {o.latency(99):.1f} s, "
        f"max {o.latency(100):.1f} s",
        f"wall time: {o.seconds:.0f} s (enqueueing {o.enqueue_seconds:.0f} s at "
        f"{o.plan.rate_per_second:g} jobs/s)",
    ]
    return lines + problems(v)


def problems(v: Verdict, shown: int = 10) -> list[str]:
    lines = [f"LOST: job {job}" for job in v.not_final[:shown]]
    lines += [f"LOST: job {job} delivered but never seen at the sink" for job in
              v.delivered_unseen[:shown]]  # fmt: skip
    lines += [f"LOST: job {job} failed without a reason" for job in v.failed_without_reason]
    lines += [f"unexpected failure ({n} jobs): {reason}" for reason, n in
              v.unexpected_failures.most_common(shown)]  # fmt: skip
    if v.unexplained:
        lines.append(
            f"WARNING: {len(v.unexplained)} duplicate deliveries NOT explained by the "
            f"crash-after-250 window: {', '.join(sorted(set(v.unexplained))[:shown])}"
        )
    lines += [f"ATTEMPTS: {problem}" for problem in v.attempt_problems[:shown]]
    lines += [f"SECRET LEAKED: {leak}" for leak in v.leaks]
    return lines


def write_report(o: Observed, lines: list[str], command: str) -> None:
    start = o.chaos.started
    timeline = [f"| +{e.at - start:.1f} s | {e.what} |" for e in o.chaos.timeline]
    settings = ", ".join(f"{k}={v}" for k, v in RECOVERY_SETTINGS.items())
    OUTPUT.write_text(
        "\n".join(
            [
                "# Chaos run",
                "",
                f"Written by `{command}` on {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M}Z "
                f"({platform.machine()}, {os.cpu_count()} cores, "
                f"Python {platform.python_version()}).",
                "",
                "```",
                *lines,
                "```",
                "",
                "## Timeline",
                "",
                "| when | what |",
                "| --- | --- |",
                *timeline,
                "",
                "## Settings",
                "",
                f"Tokens live {TOKEN_LIFETIME_SECONDS} s; beat runs mailpipe's schedule every "
                f"{BEAT_INTERVAL_SECONDS:g} s; Redis is down {REDIS_DOWN_SECONDS:g} s; "
                f"2 workers, prefork 2 each; MAILPIPE_*: {settings}.",
                "",
            ]
        )
    )
