"""A tiny `make bench` run, so the harness cannot rot (its figures mean nothing at this size)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).parents[2]


# About 16 worker starts: ~2 minutes alone, more beside the suite's other process on a
# busy machine. The limits only stop a hung run; nothing here is timed.
@pytest.mark.timeout(660)
def test_the_benchmark_runs_every_part_end_to_end(tmp_path: Path) -> None:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "bench.run", "--quick", "--output", str(tmp_path / "R.md")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    elapsed = time.monotonic() - started  # every token request happened within it
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    out = result.stdout
    # A line as each run starts and ends (stderr), the last one counting every run planned.
    ends = [line for line in result.stderr.splitlines() if line.startswith("bench [") and
            not line.endswith(" ...")]  # fmt: skip
    total = ends[-1].split("/", 1)[1].split("]", 1)[0]
    assert len(ends) == int(total), ends
    assert ends[-1].endswith("; done"), ends[-1]
    rows: dict[str, list[str]] = {}
    for line in out.splitlines():
        if line.startswith("| "):  # the first table that names a row wins (local before WAN)
            rows.setdefault(line.split("|")[1].strip(), line.split("|"))
    assert {"mailpipe (sqlite)", "mailpipe (sqlite, task events on)", "ideal", "naive"} <= set(rows)
    assert rows["mailpipe (sqlite)"][4].strip() == "1", "one token request per run"
    assert rows["naive"][4].strip() == "30", "naive fetches a token per message"
    assert float(rows["mailpipe (sqlite)"][6]) > 0, "database statements counted"
    assert "threads 2" in rows, "the scaling table"
    # 3 profiles for 7 s, tokens good for 4 s and renewed 1 s early: the arithmetic
    # expects 3 requests per profile. How many each makes depends on when the workers get
    # to its messages, so what is checked is what cannot vary: every profile asked, never
    # before its token needed renewing (3 s apart), so never more often than time allows.
    token_row = [cell.strip() for cell in rows["3"]]
    counts, expected = token_row[6].removesuffix(")").split(" (")
    fewest, _, most = counts.partition("-")
    assert expected == "3", token_row
    assert int(fewest) >= 1, ("a profile never asked for a token", token_row)
    if token_row[7] != "-":  # "-": no profile asked twice
        assert float(token_row[7].removesuffix(" s")) >= 3.0, ("renewed too early", token_row)
    assert int(most or fewest) <= elapsed // 3.0 + 1, ("more tokens than time allows", token_row)
    assert "mailpipe/ideal" in out and "mailpipe/naive" in out
    assert not (tmp_path / "R.md").exists(), "a quick run writes no results file"
    assert "mailpipe bulk (sqlite, notify_many)" in rows, "the bulk variant"
    assert rows["mailpipe bulk (sqlite, notify_many)"][4].strip() == "1"
    (figures_line,) = [line for line in out.splitlines() if line.startswith("results.json: ")]
    figures = json.loads(figures_line.removeprefix("results.json: "))
    rss = figures["worker_rss_mib"]  # per process: the main one and both pool children
    for variant in ("mailpipe (sqlite)", "ideal"):
        assert len(rss[variant]["children"]) == 2, rss
        parts = rss[variant]["main"] + sum(rss[variant]["children"])
        assert rss[variant]["main"] > 0 and abs(rss[variant]["total"] - parts) < 0.5, rss
    ratios = figures["ratios"]
    assert set(ratios) == {
        "single_vs_ideal", "bulk_vs_ideal", "wan_vs_naive", "wan_vs_bound",
        "wan_single_vs_bound", "rss_vs_ideal", "wan_safe_vs_bound", "wan_grouped_vs_bound",
        "intake_vs_fair", "relay_vs_fair",
    }  # fmt: skip
    assert all(v > 0 for k, v in ratios.items() if k != "rss_vs_ideal"), ratios
    wan = figures["variants"]["wan"]
    default, grouped = "mailpipe bulk (sqlite, notify_many)", "mailpipe bulk, pipeline_messages"
    assert set(wan) == {"mailpipe (sqlite)", default, grouped, "naive"}
    # The opt-in saves the round trip a content otherwise waits for on its own.
    trips = {name: wan[name]["round_trips_per_message"] for name in (default, grouped)}
    assert trips[grouped] < trips[default], trips
    # Round trips are counted at the sink's front: every message costs at least one.
    for name, variant in [*figures["variants"]["local"].items(), *wan.items()]:
        assert variant["round_trips_per_message"] >= 1, (name, variant)
    assert set(figures["latency_ms"]) == {
        "p99_half_peak", "p99_quarter_peak", "p99_high_behind_backlog",
    }  # fmt: skip
    assert figures["latency_ms"]["p99_half_peak"] > 0
    assert figures["latency_ms"]["p99_quarter_peak"] > 0
    # The faces' fair yardsticks ran, and each answer was a stored job there too.
    assert "- mailpipe/fair accepted/s" in out and "- mailpipe relay/fair accepted/s" in out
    assert out.count("(all there)") == 2, [s for s in out.splitlines() if "stored" in s]
    assert figures["latency_ms"]["p99_high_behind_backlog"] > 0
    assert "## A page behind a bulk backlog" in out
    assert figures["variants"]["local"]["ideal"]["msg_per_s"]["median"] > 0
