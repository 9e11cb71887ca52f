"""The profile check the operator console asks for, run where the secrets are."""

from __future__ import annotations

from worker.faces.check_runs import run_check
from worker.queue import CHECK_TASK, app
from worker.runtime import get_runtime


@app.task(name=CHECK_TASK)
def check_profile(check_id: str) -> None:
    """Run check ``check_id`` (recorded in Redis by the console): token, connect, AUTH, a test."""
    run_check(get_runtime(), check_id)
