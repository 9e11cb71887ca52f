"""Grouping py-spy's raw stacks into the steps of a delivery."""

from __future__ import annotations

from bench.run import profiling

PARENT = 'process 10:"celery worker"'
CHILD = f'{PARENT};process 11:"celery worker"'


def test_child_samples_go_to_the_innermost_step_and_parent_samples_to_celery() -> None:
    raw = "\n".join(
        [
            f"{CHILD};trace_task (celery/app/trace.py:1);send_notification (tasks/jobs.py:2);"
            "deliver (worker/delivery/service.py:3);claim (worker/store/claims.py:4) 30",
            f"{CHILD};trace_task (celery/app/trace.py:1);send_notification (tasks/jobs.py:2);"
            "deliver (worker/delivery/service.py:3);send (worker/transport/smtp/pool.py:5) 20",
            f"{CHILD};workloop (billiard/pool.py:6) 10",
            f"{PARENT};asynloop (celery/worker/loops.py:7) 40",
        ]
    )
    counts = profiling.steps(raw)
    assert counts == {
        "claim the job (store.claim)": 30,
        "SMTP transaction (pool, session, smtplib)": 20,
        "Celery in the child: pipe to and from the parent": 10,
        profiling.PARENT: 40,
    }
    table = profiling.table(counts, messages=100)
    # 30 samples at 200 Hz over 100 messages: 1.5 ms per message.
    assert "| claim the job (store.claim) | 1.50 | 30% |" in table
    assert table[-1] == "| total | 5.00 | 100% |"
