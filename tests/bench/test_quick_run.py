"""A tiny `make bench` run, so the harness cannot rot (its figures mean nothing at this size)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).parents[2]


@pytest.mark.timeout(240)  # about 15 worker starts
def test_the_benchmark_runs_every_part_end_to_end(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench.run", "--quick", "--output", str(tmp_path / "R.md")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=230,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    out = result.stdout
    rows: dict[str, list[str]] = {}
    for line in out.splitlines():
        if line.startswith("| "):  # the first table that names a row wins (local before WAN)
            rows.setdefault(line.split("|")[1].strip(), line.split("|"))
    assert {"mailpipe (sqlite)", "mailpipe (sqlite, task events on)", "ideal", "naive"} <= set(rows)
    assert rows["mailpipe (sqlite)"][4].strip() == "1", "one token request per run"
    assert rows["naive"][4].strip() == "30", "naive fetches a token per message"
    assert float(rows["mailpipe (sqlite)"][6]) > 0, "database statements counted"
    assert "threads 2" in rows, "the scaling table"
    # 3 profiles, 7 s, tokens good for 3 s: each profile asks exactly 3 times.
    assert rows["3"][6].strip() == "3 (3)", rows["3"]
    assert "mailpipe/ideal" in out and "mailpipe/naive" in out
    assert not (tmp_path / "R.md").exists(), "a quick run writes no results file"
