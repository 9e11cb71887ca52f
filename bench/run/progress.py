"""A line as each run of a benchmark starts and ends, with its figure and the time left.

A full run takes about a quarter of an hour; without these lines it is silent
until the report. The time left is an estimate: the mean length of the runs
so far times the runs still to come (runs differ, so it settles as it goes).
Lines go to stderr, so stdout stays the report.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import IO, TypeVar

T = TypeVar("T")


class Progress:
    """Counts the runs of one benchmark against the number planned."""

    def __init__(
        self,
        total: int,
        *,
        out: IO[str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total = total
        self.done = 0
        self._out = out
        self._clock = clock
        self._started = clock()

    def run(self, name: str, measure: Callable[[], T], figure: Callable[[T], str]) -> T:
        """``measure()``, announced before and after (with ``figure`` of its result)."""
        number = f"[{self.done + 1}/{self.total}]"
        self._say(f"{number} {name} ...")
        began = self._clock()
        result = measure()
        self.done += 1
        took = self._clock() - began
        self._say(f"{number} {name}: {figure(result)} ({took:.0f} s); {self.left()}")
        return result

    def left(self) -> str:
        """The estimate of the time still to go, as words."""
        remaining = max(0, self.total - self.done)
        if not remaining:
            return "done"
        if not self.done:
            return "time left unknown"
        seconds = (self._clock() - self._started) / self.done * remaining
        minutes, rest = divmod(round(seconds), 60)
        return f"about {minutes} min {rest:02d} s left ({remaining} runs)"

    def _say(self, line: str) -> None:
        print(f"bench {line}", file=self._out or sys.stderr, flush=True)
