"""The interop matrix's table: one row per server and case, printed after the run."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Row:
    server: str
    case: str
    jobs: int
    delivered: int  # jobs whose message reached the sink at least once
    duplicates: int  # copies beyond the first, over all jobs
    seconds: float  # from the first job queued to the last copy at the sink


ROWS: list[Row] = []


def print_matrix(write: Callable[[str], None]) -> None:
    if not ROWS:
        return
    write("")
    write("interop matrix: real servers as mailpipe's upstream, copies counted at the sink")
    write(f"{'server':<9} {'case':<18} {'jobs':>5} {'delivered':>9} {'duplicates':>10} "
          f"{'seconds':>8}")  # fmt: skip
    for r in ROWS:
        write(f"{r.server:<9} {r.case:<18} {r.jobs:>5} {r.delivered:>9} {r.duplicates:>10} "
              f"{r.seconds:>8.1f}")  # fmt: skip
