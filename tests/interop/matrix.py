"""The interop matrix's table: one row per server and case, printed after the run.

A test records its row as a user property of its report (``record_property``), so the
table is whole when the suite runs in parallel: the reports come back to the main
process, the tests' own modules do not.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

ROW = "interop_matrix_row"  # (server, case, jobs, delivered, duplicates, seconds)
SERVERS = ("dovecot", "postfix", "exim")
CASES = ("single sends", "200-job backlog", "backlog, grouped")


def print_matrix(write: Callable[[str], None], reports: Iterable[Any]) -> None:
    rows = sorted(
        (
            value
            for report in reports
            if getattr(report, "when", None) == "call"
            for name, value in getattr(report, "user_properties", ())
            if name == ROW
        ),
        key=lambda row: (SERVERS.index(row[0]), CASES.index(row[1])),
    )
    if not rows:
        return
    write("")
    write("interop matrix: real servers as mailpipe's upstream, copies counted at the sink")
    write(f"{'server':<9} {'case':<18} {'jobs':>5} {'delivered':>9} {'duplicates':>10} "
          f"{'seconds':>8}")  # fmt: skip
    for server, case, jobs, delivered, duplicates, seconds in rows:
        write(f"{server:<9} {case:<18} {jobs:>5} {delivered:>9} {duplicates:>10} "
              f"{seconds:>8.1f}")  # fmt: skip
