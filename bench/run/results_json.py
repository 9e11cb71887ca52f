"""bench/results.json: the run's figures for machines (medians; null where not measured)."""

from __future__ import annotations

import datetime as dt
import platform
import statistics
from typing import Any

from bench.run.figures import Run
from bench.run.plan import BULK, BULK_GROUPED, WAN_CONNECTIONS, WAN_REPLY_DELAY, WAN_SINGLE, Results
from bench.run.tables import bound_ratio, heaviest, intake_vs, relay_vs, summarize


def results_json(results: Results) -> dict[str, Any]:
    single = results.local["mailpipe (sqlite)"]
    ideal = results.local["ideal"]
    half = results.latency.get("sqlite, half of the peak")
    quarter = results.latency.get("sqlite, a quarter of the peak")
    return {
        "written": f"{dt.datetime.now(dt.UTC):%Y-%m-%dT%H:%MZ}",
        "machine": {"arch": platform.machine(), "python": platform.python_version()},
        "ratios": {
            "single_vs_ideal": _ratio(single, ideal),
            "bulk_vs_ideal": _ratio(results.local[BULK], ideal),
            "wan_vs_naive": _ratio(results.wan[WAN_SINGLE], results.wan["naive"]),
            # Bulk in WAN mode against connections / (its round trips x the reply delay):
            # the default (each content waits for its reply) and the opt-in grouping.
            "wan_vs_bound": round(
                bound_ratio(results.wan[BULK], WAN_CONNECTIONS, WAN_REPLY_DELAY), 2
            ),
            "wan_safe_vs_bound": round(
                bound_ratio(results.wan[BULK], WAN_CONNECTIONS, WAN_REPLY_DELAY), 2
            ),
            "wan_grouped_vs_bound": round(
                bound_ratio(results.wan[BULK_GROUPED], WAN_CONNECTIONS, WAN_REPLY_DELAY), 2
            ),
            "wan_single_vs_bound": round(
                bound_ratio(results.wan[WAN_SINGLE], WAN_CONNECTIONS, WAN_REPLY_DELAY), 2
            ),
            "rss_vs_ideal": round(summarize(single)["rss"] / summarize(ideal)["rss"], 2),
            # The faces against the least that loses nothing (bench/run/yardsticks/fair_*.py).
            "intake_vs_fair": round(intake_vs(results.intake, "fair"), 2),
            "relay_vs_fair": round(relay_vs(results.relay, "fair"), 2),
        },
        "latency_ms": {
            "p99_half_peak": summarize(half)["p99"] if half else None,
            "p99_quarter_peak": summarize(quarter)["p99"] if quarter else None,
            "p99_high_behind_backlog": (
                results.behind_backlog.latency_ms[2]
                if results.behind_backlog and results.behind_backlog.latency_ms
                else None
            ),
        },
        "worker_rss_mib": {
            name: _rss(results.local[name]) for name in ("mailpipe (sqlite)", "ideal")
        },
        "variants": {
            "local": {name: _variant(runs) for name, runs in results.local.items()},
            "wan": {name: _variant(runs) for name, runs in results.wan.items()},
            "latency": {name: _variant(runs) for name, runs in results.latency.items()},
        },
    }


def _rss(runs: list[Run]) -> dict[str, Any] | None:
    """Peak RSS per worker process (MiB): the main one, each pool child, the total."""
    rss = heaviest(runs).rss
    if rss is None:
        return None
    return {
        "main": round(rss.main, 1),
        "children": [round(c, 1) for c in rss.children],
        "total": round(rss.total, 1),
        "pss_total": round(rss.pss_total, 1),
    }


def _ratio(a: list[Run], b: list[Run]) -> float:
    return round(statistics.median(x.rate / y.rate for x, y in zip(a, b, strict=False)), 2)


def _variant(runs: list[Run]) -> dict[str, Any]:
    s = summarize(runs)
    out = {
        "msg_per_s": {"median": round(s["rate"], 1), "min": round(s["min"], 1),
                      "max": round(s["max"], 1)},
        "enqueue_per_s": round(s["enqueue"], 1),
        "peak_rss_mib": round(s["rss"], 1),
        "redis_commands_per_message": round(s["redis"], 2),
        "db_statements_per_message": round(s["db"], 2) if s["db"] is not None else None,
        "round_trips_per_message": round(s["trips"], 2) if s["trips"] is not None else None,
    }  # fmt: skip
    if "p99" in s:
        out["latency_ms"] = {p: round(s[p], 1) for p in ("p50", "p95", "p99")}
    return out
