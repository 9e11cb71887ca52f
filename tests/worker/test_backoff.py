"""Retry delays (pure)."""

from __future__ import annotations

from worker.backoff import retry_delay, schedule_ceiling


def test_full_jitter_stays_under_the_capped_exponential() -> None:
    def at(fraction: float, attempt: int) -> float:
        return retry_delay(
            attempt, base_seconds=30, max_seconds=3600, random_fraction=lambda: fraction
        )

    assert [at(1.0, n) for n in (1, 2, 3, 8, 9, 20)] == [30, 60, 120, 3600, 3600, 3600]
    assert at(0.0, 5) == 0.0
    assert at(0.5, 3) == 60


def test_the_default_schedule_reaches_about_six_hours() -> None:
    hours = schedule_ceiling(13, base_seconds=30, max_seconds=3600) / 3600
    assert 5.5 < hours < 6.5
