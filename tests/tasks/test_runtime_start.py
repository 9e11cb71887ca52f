"""A pool child's first task builds the runtime; a build cut short by the soft time limit
hands the task back instead of dropping it (the job would wait for the sweep)."""

from __future__ import annotations

from typing import Any

import pytest
from celery.exceptions import SoftTimeLimitExceeded

import tasks.jobs


class Built(Exception):
    """The second build: proof that the task ran again."""


@pytest.mark.parametrize(
    ("task", "args"),
    [
        (tasks.jobs.send_notification, ("j1",)),
        (tasks.jobs.send_batch, (["j1", "j2"], "normal")),
    ],
)
def test_a_start_cut_short_by_the_soft_time_limit_runs_the_task_again(
    monkeypatch: pytest.MonkeyPatch, task: Any, args: tuple[Any, ...]
) -> None:
    builds = []

    def get_runtime() -> None:
        builds.append(1)
        if len(builds) == 1:
            raise SoftTimeLimitExceeded()
        raise Built()

    monkeypatch.setattr(tasks.jobs, "get_runtime", get_runtime)
    # Run in this process: a retry of an eagerly applied task runs it again at once.
    result = task.apply(args=args)
    assert len(builds) == 2
    assert isinstance(result.result, Built)
