"""A clock that moves only when a test says so (``clock.now = …``) or a sleep does."""

from __future__ import annotations


class Clock:
    """Pass it where code takes ``time.monotonic`` or ``time.time``, and ``clock.sleep``
    where it takes ``time.sleep``: no test waits for real, and each sleep is noted."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
