"""bench/RESULTS.md's text: the tables with the conditions that explain them.

Kept apart from the measuring so the wording can change without touching a run.
"""

from __future__ import annotations

import datetime as dt
import os
import platform

from bench import profiling
from bench.run.figures import Run
from bench.run.intake_runs import PACED_CONNECTIONS, PEAK_CONNECTIONS, requests_sent
from bench.run.plan import MAIN_POOL, Plan, Results
from bench.run.tables import (
    intake_aims,
    intake_table,
    latency_table,
    ratio,
    scaling_table,
    statement_mix,
    table,
    token_table,
)


def report(plan: Plan, results: Results, command: str) -> str:
    mailpipe = results.local["mailpipe (sqlite)"]
    lines = [
        "# Benchmark results",
        "",
        f"Written by `{command}` on {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M}Z.",
        "",
        f"- machine: {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        f"- sink: {results.sink}",
        f"- {plan.messages} messages of ~2 KB, one recipient each, {plan.repetitions} "
        "repetitions interleaved. msg/s is a drain: the messages are enqueued first, then "
        "the worker starts, timed from the first task's start to the last message accepted. "
        "enqueue/s is the producer alone (notify(): validate, store, publish).",
        "",
        f"## Local sink ({MAIN_POOL})",
        "",
        *table(results.local),
        "",
        f"- mailpipe/ideal: {ratio(mailpipe, results.local['ideal'])}",
        f"- mailpipe/naive: {ratio(mailpipe, results.local['naive'])}",
        f"- database statements (sqlite), {statement_mix(mailpipe)}",
        "",
        "## Latency below the peak rate",
        "",
        "Enqueue to accepted by the sink, with the workers running and notify() "
        "called at half and a quarter of the drain rate above (the producer shares "
        "the 2 cores).",
        "",
        *latency_table(results.latency),
        "",
        "## Scaling",
        "",
        *scaling_table(results.scaling),
        "",
        "## Token requests over runs longer than the token lifetime",
        "",
        f"The endpoint's tokens last {plan.token_lifetime} s and mailpipe renews them "
        f"{plan.token_skew} s early, so each profile needs one token per "
        f"{plan.token_lifetime - plan.token_skew} s; messages are spread over the profiles "
        f"at {plan.token_rate:.0f}/s.",
        "",
        *token_table(results.tokens),
        "",
        "## WAN mode",
        "",
        "Token endpoint +150 ms, every SMTP reply +20 ms, at most 3 connections "
        "(Microsoft's limit per mailbox): mailpipe and naive each run 3 worker processes.",
        "",
        *table(results.wan),
        "",
        f"- mailpipe/naive: {ratio(results.wan['mailpipe (sqlite)'], results.wan['naive'])}",
        "",
        *intake_section(plan, results),
        "## Where the worker's time goes",
        "",
        *profile_section(results.profiled),
    ]
    return "\n".join(lines) + "\n"


def intake_section(plan: Plan, results: Results) -> list[str]:
    return [
        "## HTTP intake",
        "",
        "`POST /v1/notifications` of `mailpipe serve` (one uvicorn process serving "
        "`build_app(build_runtime())`, SQLite, one API key) against a bare FastAPI endpoint "
        "that only answers 202 (bench/bare_api.py: also a plain `def` in the thread pool, same "
        "uvicorn settings, same `Authorization` header). Every request is the same ~2 KB JSON "
        "notification (profile bench0, one recipient, 1,800 characters of text) without an "
        "Idempotency-Key, so each one is a new job, stored and queued (no worker runs) before "
        "the 202. `hey` shares the 2 cores: the peak is "
        f"{requests_sent(plan.intake_requests, PEAK_CONNECTIONS)} requests over "
        f"{PEAK_CONNECTIONS} connections in a closed loop, then {plan.intake_paced_seconds:.0f} s "
        f"at half that peak over {PACED_CONNECTIONS} connections (`-q` paces "
        "each connection, so a slow answer delays that connection's next request: the tail "
        "is not corrected for coordinated omission). Servers start afresh for every "
        f"repetition ({plan.repetitions}, interleaved) and get 100 warm-up requests.",
        "",
        *intake_table(results.intake),
        "",
        *intake_aims(results.intake),
        "",
    ]


def profile_section(run: Run | None) -> list[str]:
    if run is None or run.profile is None:
        return ["Not profiled in this run (`python -m bench.run --profile`, needs py-spy)."]
    return [
        f"py-spy on the mailpipe (sqlite) worker, {MAIN_POOL}, during one more drain of "
        f"{run.messages} messages ({run.rate:.0f} msg/s while sampled at {profiling.RATE} Hz).",
        "",
        *profiling.table(run.profile, messages=run.messages),
    ]
