"""bench/RESULTS.md's text: the tables with the conditions that explain them.

Kept apart from the measuring so the wording can change without touching a run.
"""

from __future__ import annotations

import datetime as dt
import os
import platform

from bench.run import profiling, tail, timeline
from bench.run.figures import Run
from bench.run.intake_runs import PACED_CONNECTIONS, PEAK_CONNECTIONS, requests_sent
from bench.run.mailpipe_runs import PAGE_INTERVAL
from bench.run.plan import (
    BULK,
    BULK_GROUPED,
    MAIN_POOL,
    WAN_CONNECTIONS,
    WAN_REPLY_DELAY,
    WAN_SINGLE,
    Plan,
    Results,
)
from bench.run.relay_runs import CLIENTS, WARM_UP
from bench.run.tables import (
    bound_ratio,
    intake_aims,
    intake_table,
    latency_table,
    ratio,
    relay_checks,
    relay_table,
    round_trip_bound,
    rss_table,
    scaling_table,
    statement_mix,
    summarize,
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
        "the worker starts, timed from the first task's start to the last message accepted "
        "and, for mailpipe, every task message consumed (a job taken along by another job's "
        "task leaves its own message behind, which the worker still reads). "
        "enqueue/s is the producer alone (notify(): validate, store, publish).",
        "",
        f"## Local sink ({MAIN_POOL})",
        "",
        *table(results.local),
        "",
        f"- mailpipe/ideal: {ratio(mailpipe, results.local['ideal'])}",
        f"- mailpipe/naive: {ratio(mailpipe, results.local['naive'])}",
        f"- bulk/ideal: {ratio(results.local[BULK], results.local['ideal'])} (notify_many: "
        "batch tasks of 50 jobs, claimed, sent and recorded 25 at a time; target 2x)",
        f"- database statements (sqlite), {statement_mix(mailpipe)}",
        f"- database statements (bulk), {statement_mix(results.local[BULK])}",
        "- SMTP round trips per message are the client's flights counted at the sink's "
        "front (what it sends between two waits for a reply), connection set-up included.",
        "",
        "### Worker memory",
        "",
        "Peak RSS (VmHWM) of each worker process at the end of the drain: pages shared "
        "with the main process after the fork count in each child too, as `ps` shows them. "
        "Total PSS splits each shared page among its processes (what the machine spends), "
        "read at the same moment.",
        "",
        *rss_table({name: results.local[name] for name in ("mailpipe (sqlite)", "ideal")}),
        "",
        f"- mailpipe/ideal (total): {_rss_ratio(results)}",
        "",
        *latency_section(results),
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
        *wan_section(plan, results.wan),
        *backlog_section(plan, results.behind_backlog),
        *intake_section(plan, results),
        *relay_section(plan, results),
        "## Where the worker's time goes",
        "",
        *profile_section(results.profiled),
    ]
    return "\n".join(lines) + "\n"


def latency_section(results: Results) -> list[str]:
    return [
        "## Latency below the peak rate",
        "",
        "Enqueue to accepted by the sink, with the workers running and notify() "
        "called at half and a quarter of the drain rate above (the producer shares "
        "the 2 cores).",
        "",
        *latency_table(results.latency),
        "",
        *tail_section(results.latency),
    ]


def tail_section(latency: dict[str, list[Run]]) -> list[str]:
    runs = {name: r[0].tail for name, r in latency.items() if r and r[0].tail is not None}
    if not runs:
        return []
    return [
        "### Where the slowest 1% wait",
        "",
        "Each process of a latency run notes when each job passes each point of its way "
        "(bench/run/timeline.py: Celery signals, wrappers on the store's claim and add_job, "
        "`gc.callbacks`, and the attempt's own started_at and ended_at), and when it paused "
        f"for something else: a garbage collection, a lease renewal, a commit over "
        f"{timeline.COMMIT_MS:.0f} ms (a SQLite WAL checkpoint runs in one), a statement over "
        f"{timeline.STATEMENT_MS:.0f} ms (a lock wait). Mean ms per step for the slowest 1% "
        "(by store to accepted) and for every job; below, how many of the slowest had a pause "
        "of each kind (in any process) overlap their wait between the store and the send.",
        "",
        *tail.table(runs),
        "",
        "Every pause noted in each run, by process (count, total ms):",
        "",
        *tail.totals_lines(runs),
        "",
    ]


def wan_section(plan: Plan, wan: dict[str, list[Run]]) -> list[str]:
    return [
        "## WAN mode",
        "",
        f"Token endpoint +150 ms, every SMTP reply +{WAN_REPLY_DELAY * 1000:.0f} ms, at most "
        f"{WAN_CONNECTIONS} connections (Microsoft's limit per mailbox): each variant runs "
        f"{WAN_CONNECTIONS} worker processes. The bulk variants send {plan.wan_bulk_messages} "
        f"messages, the others {plan.wan_messages}. By default each message's content waits "
        "for its own reply (two round trips a message); with the profile's opt-in "
        "pipeline_messages it goes in the same write as the next message's commands (one).",
        "",
        *table(wan),
        "",
        f"- mailpipe/naive: {ratio(wan[WAN_SINGLE], wan['naive'])}",
        *wan_bounds(wan),
        "",
    ]


def wan_bounds(runs: dict[str, list[Run]]) -> list[str]:
    """Each mailpipe variant against what its own round trips allow."""
    lines = []
    for name in (WAN_SINGLE, BULK, BULK_GROUPED):
        bound = round_trip_bound(runs[name], WAN_CONNECTIONS, WAN_REPLY_DELAY)
        share = bound_ratio(runs[name], WAN_CONNECTIONS, WAN_REPLY_DELAY)
        target = "; target 0.9x for bulk" if name == BULK else ""
        lines.append(
            f"- {name}: {share:.2f}x the round-trip bound ({WAN_CONNECTIONS} connections / "
            f"({summarize(runs[name])['trips']:.2f} round trips x "
            f"{WAN_REPLY_DELAY * 1000:.0f} ms) = {bound:.0f} msg/s){target}"
        )
    return lines


def backlog_section(plan: Plan, run: Run | None) -> list[str]:
    if run is None or run.latency_ms is None:
        return []
    p50, p95, p99 = run.latency_ms
    return [
        "## A page behind a bulk backlog",
        "",
        f"{plan.backlog_messages} messages queued with notify_many() for one profile, then the "
        f"worker ({MAIN_POOL}) starts and {plan.backlog_pages} high-priority pages for the same "
        f"profile are sent with notify(), one every {PAGE_INTERVAL * 1000:.0f} ms, while the "
        f"backlog drains ({run.rate:.0f} msg/s in all). notify() to accepted by the sink, "
        "pages only:",
        "",
        "| pages | p50 ms | p95 ms | p99 ms | target p99 |",
        "| --- | --- | --- | --- | --- |",
        f"| {plan.backlog_pages} | {p50:.0f} | {p95:.0f} | {p99:.0f} | < 1000 "
        f"({'met' if p99 < 1000 else 'not met'}) |",
        "",
    ]


def intake_section(plan: Plan, results: Results) -> list[str]:
    return [
        "## HTTP intake",
        "",
        "`POST /v1/notifications` of `mailpipe serve` (one uvicorn process serving "
        "`build_app(build_runtime())`, SQLite, one API key) against two yardsticks with the "
        "same route, a plain `def` in the thread pool too, the same uvicorn settings and the "
        "same `Authorization` header: fair (bench/run/yardsticks/fair_api.py) checks the "
        "key's SHA-256, validates the same JSON with a pydantic model of the same fields and "
        "limits, inserts one row into SQLite (WAL, synchronous=NORMAL, as mailpipe), commits "
        "and LPUSHes the id to Redis, the least that loses no job; bare "
        "(bench/run/yardsticks/bare_api.py) only answers 202, the HTTP stack alone. Every "
        "request is the same ~2 KB JSON notification (profile bench0, one recipient, 1,800 "
        "characters of text) without an "
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


def relay_section(plan: Plan, results: Results) -> list[str]:
    return [
        "## SMTP relay",
        "",
        "`mailpipe relay --host 127.0.0.1` (bench/run/relay_server.py runs the command's own entry "
        "point: STARTTLS with a test CA's certificate, relay user `bench` for profile bench0 "
        "with an Argon2 hash, SQLite, the run's Redis as broker; no worker runs) against "
        "two aiosmtpd yardsticks with the same options and certificate whose AUTH PLAIN takes "
        "any password: fair (bench/run/yardsticks/fair_smtp.py) parses each message with the "
        "standard library's email parser, inserts one row into SQLite (WAL, synchronous=NORMAL), "
        "commits and LPUSHes the id to Redis before its 250, the least that loses no message; "
        "discard (bench/run/yardsticks/discard_smtp.py) answers 250 and keeps nothing. The relay "
        "answers 250 only once the job is stored and its task published. "
        f"{CLIENTS} smtplib clients, each over ONE connection: STARTTLS and AUTH PLAIN once "
        f"(untimed), then {plan.relay_messages} messages back to back (a ~2 KB text/plain "
        "alert with its own Message-ID, one recipient). msg/s is the 250s to DATA over the "
        "span from the first MAIL to the last final reply. The clients are threads of the "
        "benchmark process: 4 processes sent no faster on 2 cores (they take CPU from the "
        "server) and took 5-10 s to spawn; at the discard server's rate the client threads "
        "use most of a core, so that figure is partly the client's limit and the ratio, if "
        "anything, flatters the relay. Servers start afresh for every repetition "
        f"({plan.repetitions}, interleaved) and get {WARM_UP} warm-up messages over one "
        "connection (the relay's one Argon2 check, then remembered, happens there). Server "
        "CPU is the server process's user and system time while the clients ran (their TLS "
        "handshakes included), per message sent.",
        "",
        *relay_table(results.relay),
        "",
        *relay_checks(results.relay),
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


def _rss_ratio(results: Results) -> str:
    mailpipe = summarize(results.local["mailpipe (sqlite)"])["rss"]
    return f"{mailpipe / summarize(results.local['ideal'])['rss']:.2f}x"
