"""The chaos run's exit rules: a held job never back always fails it; one back later than
the target fails the full run only (the suite's short run reports it)."""

from __future__ import annotations

from bench.chaos.checks import Verdict


def test_a_job_never_back_fails_every_run() -> None:
    verdict = Verdict(recovery_problems=["job j1 held by chaos-0: never back"])
    assert not verdict.passed()
    assert not verdict.passed(recovery_target=False)


def test_a_job_back_late_fails_only_the_run_held_to_the_target() -> None:
    verdict = Verdict(slow_recoveries=["job j1 held by chaos-0: back after 50.4 s (target 30 s)"])
    assert not verdict.passed()
    assert verdict.passed(recovery_target=False)


def test_a_clean_verdict_passes() -> None:
    assert Verdict().passed()
