"""The run's summary lines (printed) and bench/CHAOS.md (the full run only).

The test suite reads the printed lines, so their wording is part of the contract:
the first line is the run in one line (faults, recovery, outcome, duplicates,
unplanned worker exits); the lines after it are the details.
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
    RECOVERY_TARGET_SECONDS,
    REDIS_DOWN_SECONDS,
    SEND_LEASE_SECONDS,
    SWEEP_INTERVAL_SECONDS,
    TOKEN_LIFETIME_SECONDS,
    Plan,
)
from bench.chaos.processes import REPO
from bench.chaos.recovery import Recovery, percentile

OUTPUT = REPO / "bench" / "CHAOS.md"


@dataclass(frozen=True)
class Observed:
    """What the run saw besides the verdict, for the summary."""

    plan: Plan
    database: str  # sqlite | postgresql
    chaos: Chaos
    outage: str  # how the database was taken away
    recoveries: list[Recovery]
    tokens: Counter[str]
    sink: Counter[str]
    accepted: int
    unpublished: int
    unpublished_not_final: int
    notify_retries: int
    republished: int
    database_failures: tuple[int, int]  # send tasks, lease renewals (worker logs)
    token_lock_waits: int
    seconds_to_final: list[float]  # per final job, created → delivered or failed, sorted
    seconds: float
    enqueue_seconds: float

    def latency(self, percent: int) -> float:
        return percentile(self.seconds_to_final, percent)

    def recovery(self, percent: int) -> float:
        return percentile([r.seconds for r in self.recoveries if r.seconds is not None], percent)


def summary(o: Observed, v: Verdict) -> list[str]:
    kills = o.chaos.kills
    at_data = sum(1 for kill in kills if kill.at_data)
    reasons = "all with a recorded reason"
    if v.failed_without_reason:
        reasons = f"{len(v.failed_without_reason)} without a recorded reason"
    lines = [
        f"chaos: {o.plan.jobs} jobs, {o.plan.profiles} profiles, {len(kills)} worker kills "
        f"({at_data} at DATA), {o.chaos.redis_restarts} redis restart, database outage "
        f"{o.chaos.db_outage_seconds:.0f} s, recovery p50 {o.recovery(50):.1f} s / max "
        f"{o.recovery(100):.1f} s, delivered {v.delivered}, failed {v.failed}, lost {v.lost}, "
        f"duplicates {v.duplicates} (explained {v.explained}), "
        f"unplanned worker exits {len(v.unplanned_exits)}",
        f"faults: token 503s {o.tokens['503']}, 429s {o.tokens['429']}, "
        f"rcpt 451s {o.sink['rcpt_451']}, dropped after DATA {o.sink['dropped_after_data']}; "
        f"{o.database}: {o.outage} for {o.chaos.db_outage_seconds:.1f} s (jobs stored "
        f"meanwhile {o.chaos.stored_during_outage}, send tasks failed on it "
        f"{o.database_failures[0]}, lease renewals failed {o.database_failures[1]})",
        f"delivered {v.delivered}, failed {v.failed} ({reasons}), lost {v.lost}",
        f"duplicates at the sink: {v.duplicates} "
        f"(explained by a crash between the server's 250 and the send mark: {v.explained}"
        + "".join(f"; {n} by the {what}" for what, n in sorted(v.explained_by.items()))
        + ")",
        f"attempts recorded: {v.attempts} for {v.delivered + v.failed + len(v.not_final)} jobs, "
        + (
            "every job's attempt_count matches its attempts rows"
            if not v.attempt_problems
            else f"{len(v.attempt_problems)} problems"
        ),
        "secrets in logs: "
        + ("none" if not v.leaks else f"{len(v.leaks)} FOUND")
        + " (worker, beat and harness logs, every Redis value, the AOF, the database)",
        f"recovery (SIGKILL to job back): p50 {o.recovery(50):.1f} s, max {o.recovery(100):.1f} s "
        f"over {len(o.recoveries)} jobs held by {len(kills)} killed workers (target "
        f"{RECOVERY_TARGET_SECONDS:g} s); send lease {SEND_LEASE_SECONDS:g} s, sweep every "
        f"{SWEEP_INTERVAL_SECONDS:g} s (mailpipe's defaults); lease end to back: max "
        f"{percentile([a for r in o.recoveries if (a := r.after_lease) is not None], 100):.1f} s",
        *[f"  {line}" for line in per_kill(o)],
        f"also: enqueue failed after store {o.unpublished} (broker down; "
        f"{o.unpublished - o.unpublished_not_final} of them final via the sweeper), sweeper "
        f"republished {o.republished}, notify retried {o.notify_retries}, unplanned worker "
        f"exits {len(v.unplanned_exits)}, {o.chaos.workers.started} workers started",
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


def per_kill(o: Observed) -> list[str]:
    """One line per kill: when, which worker, and how long each job it held took to come back."""
    lines = []
    for kill in o.chaos.kills:
        times = [_seconds(r) for r in o.recoveries if r.kill is kill]
        where = " at DATA" if kill.at_data else ""
        held = ", ".join(times) if times else "held no job"
        lines.append(f"kill at +{kill.at - o.chaos.started:.1f} s of {kill.worker}{where}: {held}")
    return lines


def _seconds(r: Recovery) -> str:
    lease = (
        f"lease left {r.lease_left:.1f} s"
        if r.lease_left >= 0
        else f"lease out {-r.lease_left:.1f} s before the kill"
    )
    if r.seconds is None or r.after_lease is None:
        return f"never back ({lease})"
    return f"{r.seconds:.1f} s ({lease} + {r.after_lease:.1f} s)"


def problems(v: Verdict, shown: int = 10) -> list[str]:
    lines = [f"LOST: job {job}" for job in v.not_final[:shown]]
    lines += [f"LOST: job {job} delivered but never seen at the sink" for job in
              v.delivered_unseen[:shown]]  # fmt: skip
    lines += [f"LOST: job {job} failed without a reason" for job in v.failed_without_reason]
    lines += [f"unexpected failure ({n} jobs): {reason}" for reason, n in
              v.unexpected_failures.most_common(shown)]  # fmt: skip
    if v.unexplained:
        lines.append(
            f"WARNING: {len(v.unexplained)} duplicate deliveries NOT explained by a crash "
            f"between the server's 250 and the send mark: "
            f"{', '.join(sorted(set(v.unexplained))[:shown])}"
        )
    lines += [f"ATTEMPTS: {problem}" for problem in v.attempt_problems[:shown]]
    lines += [f"RECOVERY: {problem}" for problem in v.recovery_problems[:shown]]
    lines += [f"SLOW RECOVERY: {problem}" for problem in v.slow_recoveries[:shown]]
    lines += [f"UNPLANNED EXIT: worker {exit_}" for exit_ in v.unplanned_exits]
    lines += [f"SECRET LEAKED: {leak}" for leak in v.leaks]
    return lines


def write_report(o: Observed, lines: list[str], command: str) -> None:
    start = o.chaos.started
    timeline = [f"| +{e.at - start:.1f} s | {e.what} |" for e in o.chaos.timeline]
    recovery = [
        f"| +{r.kill.at - start:.1f} s | {r.kill.worker}{' (at DATA)' if r.kill.at_data else ''} "
        f"| {r.job_id} | {_seconds(r)} | {r.how} |"
        for r in o.recoveries
    ]
    settings = ", ".join(f"{k}={v}" for k, v in RECOVERY_SETTINGS.items())
    OUTPUT.write_text(
        "\n".join(
            [
                "# Chaos run",
                "",
                f"Written by `{command}` on {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M}Z "
                f"({platform.machine()}, {os.cpu_count()} cores, "
                f"Python {platform.python_version()}, {o.database}).",
                "",
                "```",
                *lines,
                "```",
                "",
                "## Recovery",
                "",
                f"From each SIGKILL to the moment each job the killed worker held was back "
                f"(accepted by the sink, or an attempt recorded by another worker), with "
                f"mailpipe's default send lease ({SEND_LEASE_SECONDS:g} s, renewed every third) "
                f"and sweep (every {SWEEP_INTERVAL_SECONDS:g} s): p50 {o.recovery(50):.1f} s, "
                f"max {o.recovery(100):.1f} s (target {RECOVERY_TARGET_SECONDS:g} s).",
                "",
                "| kill | worker | job | back after | how |",
                "| --- | --- | --- | --- | --- |",
                *recovery,
                "",
                "## Timeline",
                "",
                "| when | what |",
                "| --- | --- |",
                *timeline,
                "",
                "## Settings",
                "",
                f"Send lease {SEND_LEASE_SECONDS:g} s and sweep every "
                f"{SWEEP_INTERVAL_SECONDS:g} s (mailpipe's defaults); tokens live "
                f"{TOKEN_LIFETIME_SECONDS} s; beat pre-refreshes tokens every "
                f"{BEAT_INTERVAL_SECONDS:g} s; Redis is down {REDIS_DOWN_SECONDS:g} s; the "
                f"database is down {o.plan.db_outage_seconds:g} s: {o.outage}; 2 workers, "
                f"prefork 2 each; MAILPIPE_*: {settings}.",
                "",
            ]
        )
    )
