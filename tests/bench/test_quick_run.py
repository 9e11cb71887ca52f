"""A tiny `make bench` run, so the harness cannot rot (its figures mean nothing at this size)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).parents[2]


def test_the_benchmark_runs_every_variant_end_to_end(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench.run", "--quick", "--output", str(tmp_path / "R.md")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ")]
    variants = [row.split("|")[1].strip() for row in rows]
    assert "mailpipe (sqlite)" in variants
    assert {"ideal", "naive"} <= set(variants)
    for row in rows[2:]:
        if row.startswith("| mailpipe"):
            assert row.split("|")[5].strip() == "1", "one token request per run: " + row
    assert "mailpipe/naive" in result.stdout
    assert not (tmp_path / "R.md").exists(), "a quick run writes no results file"
