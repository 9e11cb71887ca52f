"""Retry delays (pure)."""

from __future__ import annotations

from providers.backoff import full_jitter


def test_full_jitter_stays_under_the_capped_exponential() -> None:
    def at(fraction: float, attempt: int) -> float:
        return full_jitter(
            attempt, base_seconds=30, max_seconds=3600, random_fraction=lambda: fraction
        )

    assert [at(1.0, n) for n in (1, 2, 3, 8, 9, 20)] == [30, 60, 120, 3600, 3600, 3600]
    assert at(0.0, 5) == 0.0
    assert at(0.5, 3) == 60


def test_the_default_schedule_reaches_about_six_hours() -> None:
    # Every jitter at its maximum: the longest total wait across 13 attempts.
    ceiling = sum(
        full_jitter(n, base_seconds=30, max_seconds=3600, random_fraction=lambda: 1.0)
        for n in range(1, 13)
    )
    assert 5.5 < ceiling / 3600 < 6.5
