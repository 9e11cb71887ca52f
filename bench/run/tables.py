"""The markdown tables of bench/RESULTS.md, and the medians and ratios they show.

Repetitions vary, so every figure is a median with its spread, summarised here
once for all tables.
"""

from __future__ import annotations

import statistics
from collections import Counter
from typing import Any

from bench.run.figures import Run
from bench.run.intake_runs import IntakeRun
from bench.run.processes import Pool
from bench.run.relay_runs import RELAY, RelayRun
from bench.run.token_runs import TokenRun


def summarize(runs: list[Run]) -> dict[str, Any]:
    rates = [r.rate for r in runs]
    out: dict[str, Any] = {
        "rate": statistics.median(rates),
        "min": min(rates),
        "max": max(rates),
        "enqueue": statistics.median(r.enqueue_per_second for r in runs),
        "tokens": statistics.median(r.token_requests for r in runs),
        "redis": statistics.median(r.redis_commands_per_message for r in runs),
        "rss": max(r.peak_rss_mb for r in runs),
    }
    trips = [r.round_trips_per_message for r in runs]
    out["trips"] = statistics.median(trips) if None not in trips else None  # type: ignore[type-var]
    statements = [r.db_statements_per_message for r in runs]
    out["db"] = statistics.median(statements) if None not in statements else None  # type: ignore[type-var]
    latencies = [r.latency_ms for r in runs if r.latency_ms]
    for i, p in enumerate(("p50", "p95", "p99")):
        if latencies:
            out[p] = statistics.median(latency[i] for latency in latencies)
    return out


def heaviest(runs: list[Run]) -> Run:
    """The repetition whose worker peaked highest (the one the tables' RSS column shows)."""
    return max(runs, key=lambda r: r.peak_rss_mb)


def rss_table(rows: dict[str, list[Run]]) -> list[str]:
    """Peak RSS per worker process: the main one, each pool child, and their sum."""
    lines = [
        "| variant | main process MiB | pool children MiB | total MiB | total PSS MiB |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, runs in rows.items():
        rss = heaviest(runs).rss
        if rss is None:
            continue
        children = ", ".join(f"{c:.0f}" for c in rss.children) or "-"
        lines.append(
            f"| {name} | {rss.main:.0f} | {children} | {rss.total:.0f} | {rss.pss_total:.0f} |"
        )
    return lines


def _rate(s: dict[str, Any]) -> str:
    return f"{s['rate']:.0f} ({s['min']:.0f}-{s['max']:.0f})"


def table(rows: dict[str, list[Run]]) -> list[str]:
    lines = [
        "| variant | msg/s (median, min-max) | enqueue/s | token requests | Redis cmds/msg "
        "| DB statements/msg | SMTP round trips/msg | worker peak RSS MiB |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, runs in rows.items():
        s = summarize(runs)
        db = f"{s['db']:.1f}" if s["db"] is not None else "-"
        trips = f"{s['trips']:.2f}" if s["trips"] is not None else "-"
        lines.append(
            f"| {name} | {_rate(s)} | {s['enqueue']:.0f} | {s['tokens']:.0f} | {s['redis']:.1f} "
            f"| {db} | {trips} | {s['rss']:.0f} |"
        )
    return lines


def round_trip_bound(runs: list[Run], connections: int, delay: float) -> float:
    """The most messages a second that round trips allow: connections / (trips x reply delay)."""
    trips = summarize(runs)["trips"]
    return float(connections / (trips * delay))


def bound_ratio(runs: list[Run], connections: int, delay: float) -> float:
    return float(summarize(runs)["rate"] / round_trip_bound(runs, connections, delay))


def statement_mix(runs: list[Run]) -> str:
    total: Counter[str] = Counter()
    for run in runs:
        total.update(run.db_statements or {})
    messages = sum(r.messages for r in runs)
    # Skips what only the workers' start-up ran (PRAGMA, the schema check).
    mix = sorted((kind, n / messages) for kind, n in total.items() if n / messages >= 0.01)
    kinds = ", ".join(f"{kind} {share:.2f}" for kind, share in mix)
    return f"per message: {kinds} (a checkout is a pool checkout; with pre-ping a round trip)"


def latency_table(rows: dict[str, list[Run]]) -> list[str]:
    lines = [
        "| store, pace | msg/s | messages | p50 ms | p95 ms | p99 ms "
        "| slowest 1%: ms before the send began / in the send |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, runs in rows.items():
        s = summarize(runs)
        rate = statistics.median(r.enqueue_per_second for r in runs)  # the pace achieved
        split = runs[0].slowest_wait_send_ms
        where = f"{split[0]:.0f} / {split[1]:.0f}" if split else "-"
        lines.append(
            f"| {name} | {rate:.0f} | {runs[0].messages} | {s['p50']:.0f} | {s['p95']:.0f} "
            f"| {s['p99']:.0f} | {where} |"
        )
    return lines


def scaling_table(rows: dict[Pool, dict[str, list[Run]]]) -> list[str]:
    lines = [
        "| pool | mailpipe (sqlite) msg/s | ideal msg/s | mailpipe/ideal | token requests "
        "| mailpipe peak RSS MiB |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for pool, runs in rows.items():
        m, i = summarize(runs["mailpipe"]), summarize(runs["ideal"])
        lines.append(
            f"| {pool} | {_rate(m)} | {_rate(i)} | {ratio(runs['mailpipe'], runs['ideal'])} "
            f"| {m['tokens']:.0f} | {m['rss']:.0f} |"
        )
    return lines


def token_table(runs: list[TokenRun]) -> list[str]:
    lines = [
        "| profiles | pool | seconds | messages | token requests | per profile (expected) "
        "| shortest gap between one profile's requests |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for run in runs:
        counts = sorted(len(times) for times in run.requests.values())
        spread = f"{counts[0]}" if counts[0] == counts[-1] else f"{counts[0]}-{counts[-1]}"
        gap = f"{run.shortest_gap:.1f} s" if run.shortest_gap is not None else "-"
        lines.append(
            f"| {run.profiles} | {run.pool} | {run.seconds:.0f} | {run.messages} | {run.total} "
            f"| {spread} ({run.expected_per_profile}) | {gap} |"
        )
    return lines


def ratio(a: list[Run], b: list[Run]) -> str:
    ratios = [x.rate / y.rate for x, y in zip(a, b, strict=False)]
    return f"{statistics.median(ratios):.2f}x (min {min(ratios):.2f}, max {max(ratios):.2f})"


def _spread(values: list[float], digits: int = 0) -> str:
    median, low, high = statistics.median(values), min(values), max(values)
    return f"{median:.{digits}f} ({low:.{digits}f}-{high:.{digits}f})"


def intake_table(rows: dict[str, list[IntakeRun]]) -> list[str]:
    lines = [
        "| variant | accepted/s at the peak (median, min-max) | pace at half the peak, req/s "
        "| p50 ms | p99 ms (median, min-max) | slowest ms | answers other than 202 |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, runs in rows.items():
        others = sum(run.sent - run.accepted for run in runs)
        lines.append(
            f"| {name} | {_spread([r.peak.accepted_per_second for r in runs])} "
            f"| {statistics.median(r.paced.rate for r in runs):.0f} "
            f"| {statistics.median(r.paced.p50_ms for r in runs):.1f} "
            f"| {_spread([r.paced.p99_ms for r in runs], 1)} "
            f"| {max(r.paced.slowest_ms for r in runs):.0f} | {others} |"
        )
    return lines


def intake_aims(rows: dict[str, list[IntakeRun]]) -> list[str]:
    """The issue's aims for the intake, each with its figure and whether it is met."""
    mailpipe = rows["mailpipe"]
    p99 = statistics.median(r.paced.p99_ms for r in mailpipe)
    stored = [(name, r.stored, r.accepted) for name in ("mailpipe", "fair") for r in rows[name]]
    return [
        f"- mailpipe/fair accepted/s: {intake_ratio(rows, 'fair')}; aim >= 0.8x: "
        f"{_met(intake_vs(rows, 'fair') >= 0.8)}",
        f"- mailpipe/bare accepted/s: {intake_ratio(rows, 'bare')} (the HTTP stack alone: "
        "no aim, kept for comparison with earlier runs)",
        f"- mailpipe p99 at half its peak: {p99:.0f} ms (median); aim < 50 ms: {_met(p99 < 50)}",
        "- every 202 a stored job: "
        + ", ".join(f"{n} {s} stored for {a} accepted" for n, s, a in stored)
        + (" (all there)" if all(s == a for _, s, a in stored) else " (MISMATCH)"),
    ]


def _intake_ratios(rows: dict[str, list[IntakeRun]], yardstick: str) -> list[float]:
    return [
        m.peak.accepted_per_second / y.peak.accepted_per_second
        for m, y in zip(rows["mailpipe"], rows[yardstick], strict=True)
    ]


def intake_vs(rows: dict[str, list[IntakeRun]], yardstick: str) -> float:
    """mailpipe's accepted/s at the peak over the yardstick's: the median of the repetitions."""
    return float(statistics.median(_intake_ratios(rows, yardstick)))


def intake_ratio(rows: dict[str, list[IntakeRun]], yardstick: str) -> str:
    ratios = _intake_ratios(rows, yardstick)
    return f"{statistics.median(ratios):.2f}x (min {min(ratios):.2f}, max {max(ratios):.2f})"


def relay_table(rows: dict[str, list[RelayRun]]) -> list[str]:
    lines = [
        "| server | accepted msg/s (median, min-max) | connections x messages "
        "| answers other than 250 | server CPU ms/msg | server CPU / timed span | Redis cmds/msg |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, runs in rows.items():
        refused = sum((r.refused for r in runs), Counter[int]())
        others = ", ".join(f"{n} x {code}" for code, n in sorted(refused.items())) or "none"
        connections = len(runs[0].connections)
        lines.append(
            f"| {name} | {_spread([r.rate for r in runs])} "
            f"| {connections} x {runs[0].sent // connections} | {others} "
            f"| {statistics.median(r.cpu_ms_per_message for r in runs):.2f} "
            f"| {statistics.median(r.server_cpu / r.seconds for r in runs):.0%} "
            f"| {statistics.median(r.redis_commands / r.sent for r in runs):.1f} |"
        )
    return lines


def relay_checks(rows: dict[str, list[RelayRun]]) -> list[str]:
    """The relay against its yardsticks, and whether every 250 is a stored and queued job."""
    counts = [(n, r.stored, r.queued, r.accepted) for n in (RELAY, "fair") for r in rows[n]]
    whole = all(stored == queued == accepted for _, stored, queued, accepted in counts)
    return [
        f"- {RELAY}/fair accepted/s: {relay_ratio(rows, 'fair')}; aim >= 0.8x: "
        f"{_met(relay_vs(rows, 'fair') >= 0.8)}",
        f"- {RELAY}/discard accepted/s: {relay_ratio(rows, 'discard')} (aiosmtpd alone: no aim, "
        "kept for comparison with earlier runs)",
        "- every 250 a stored and queued job: "
        + ", ".join(f"{n} {s} stored and {q} queued for {a} accepted" for n, s, q, a in counts)
        + (" (all there)" if whole else " (MISMATCH)"),
    ]


def _relay_ratios(rows: dict[str, list[RelayRun]], yardstick: str) -> list[float]:
    return [r.rate / y.rate for r, y in zip(rows[RELAY], rows[yardstick], strict=True)]


def relay_vs(rows: dict[str, list[RelayRun]], yardstick: str) -> float:
    """The relay's accepted/s over the yardstick's: the median of the repetitions."""
    return float(statistics.median(_relay_ratios(rows, yardstick)))


def relay_ratio(rows: dict[str, list[RelayRun]], yardstick: str) -> str:
    ratios = _relay_ratios(rows, yardstick)
    return f"{statistics.median(ratios):.2f}x (min {min(ratios):.2f}, max {max(ratios):.2f})"


def _met(ok: bool) -> str:
    return "**met**" if ok else "**not met**"
