"""A short `make chaos` run, so the harness cannot rot: kills (one at DATA), a database
outage, a Redis restart, faulty servers; nothing lost, every killed worker's jobs back.

How soon they came back depends on how busy the machine is: the run prints it (a
"SLOW RECOVERY" line past the target) and the full `make chaos` holds it to the target.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).parents[2]


def test_the_chaos_run_loses_no_job_and_leaks_no_secret() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench.chaos", "--quick"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = result.stdout[-3000:] + result.stderr[-3000:]
    assert result.returncode == 0, output
    lines = result.stdout.splitlines()
    summary = next(line for line in lines if line.startswith("chaos: 100 jobs, 5 profiles, "))
    assert "3 worker kills (1 at DATA), 1 redis restart, database outage 3 s" in summary, summary
    assert re.search(r", recovery p50 [\d.]+ s / max [\d.]+ s, ", summary), summary
    assert ", lost 0, " in summary, summary
    assert summary.endswith(", unplanned worker exits 0"), summary
    assert any(line.startswith("delivered ") and line.endswith(", lost 0") for line in lines)
    assert "failed 3 (all with a recorded reason)" in result.stdout, output
    assert any(line.startswith("duplicates at the sink: ") for line in lines), output
    assert "every job's attempt_count matches its attempts rows" in result.stdout, output
    assert any(line.startswith("secrets in logs: none (") for line in lines), output
    assert not any(
        word in line
        for line in lines
        for word in ("WARNING", "LOST", "RECOVERY:", "UNPLANNED")
        if not line.startswith("SLOW RECOVERY: ")
    ), output
