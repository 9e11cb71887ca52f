"""The real SMTP servers a worker sends through, each in front of the test's sink.

``start_upstream(name, ...)`` starts one of them (and the Dovecot auth service that Postfix
and Exim use for SASL) and returns what the tests need to know about it: where it listens,
what it has accepted by its own log, what it still holds, and its crash reports.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.fakes.smtp_server import TlsFiles
from tests.interop.daemons import tail
from tests.interop.dovecot import Dovecot
from tests.interop.exim import Exim
from tests.interop.matrix import SERVERS
from tests.interop.postfix import Postfix

# The line each server logs once per message it accepted (Dovecot: relayed to the sink).
ACCEPTED = {
    "dovecot": re.compile(r"Successfully relayed message"),
    "postfix": re.compile(r"postfix/cleanup\[\d+\]: \w+: message-id="),
    "exim": re.compile(r" <= "),
}


@dataclass
class Upstream:
    name: str
    port: int
    dovecot: Dovecot
    log: Path
    queued: Callable[[], int]  # messages accepted but not yet handed to the sink
    stops: list[Callable[[], None]] = field(default_factory=list)

    def accepted(self) -> int:
        """Messages the server says it accepted, by its own log, since it started."""
        if not self.log.exists():
            return 0
        pattern = ACCEPTED[self.name]
        return sum(1 for line in self.log.read_text(errors="replace").splitlines()
                   if pattern.search(line))  # fmt: skip

    def logs(self) -> str:
        """The tails of the server's log and its Dovecot's, for a failure's message."""
        if self.name == "dovecot":
            return f"--- dovecot log ---\n{tail(self.log)}"
        own = f"--- {self.name} log ---\n{tail(self.log)}"
        return f"{own}\n--- dovecot log ---\n{tail(self.dovecot.log)}"

    def stop(self) -> None:
        for stop in reversed(self.stops):
            stop()


def start_upstream(
    name: str,
    *,
    tls: TlsFiles,
    introspection_url: str,
    passwords: dict[str, str],
    sink: tuple[str, int],
) -> Upstream:
    if name not in SERVERS:
        raise ValueError(f"unknown server {name!r}; one of {SERVERS}")
    dovecot = Dovecot(
        tls=tls,
        introspection_url=introspection_url,
        passwords=passwords,
        relay=sink if name == "dovecot" else None,
    )
    stops = [dovecot.stop]
    try:
        dovecot.start()
        if name == "dovecot":
            assert dovecot.submission_port is not None
            return Upstream(name, dovecot.submission_port, dovecot, dovecot.log, lambda: 0, stops)
        server: Postfix | Exim
        if name == "postfix":
            server = Postfix(tls=tls, auth_port=dovecot.auth_port, relay=sink)
        else:
            server = Exim(tls=tls, auth_socket=dovecot.auth_socket, relay=sink)
        stops.append(server.stop)
        server.start()
        return Upstream(name, server.port, dovecot, server.log, server.queued, stops)
    except BaseException:
        for stop in reversed(stops):
            stop()
        raise
