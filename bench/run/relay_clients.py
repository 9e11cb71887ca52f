"""The relay run's SMTP clients: smtplib connections sending ~2 KB alerts back to back.

Each client opens ONE connection (STARTTLS, AUTH PLAIN, both untimed), waits
for the others at a barrier, then sends its messages: the clock runs from the
first MAIL to the last final reply, over all clients. Clients are threads or
processes; the reply to every message is counted, so a refusal cannot pass
for throughput.
"""

from __future__ import annotations

import email.utils
import multiprocessing
import queue
import smtplib
import ssl
import textwrap
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

USER, PASSWORD = "bench", "bench relay password"
SENDER, RECIPIENT = "alertmanager@tools.bench.test", "oncall@bench.test"
BARRIER_SECONDS = 120.0
# 1,800 characters of text in 76-character lines, as the HTTP intake's body.
BODY = textwrap.fill(("Disk usage on db-01 is above 95%. " * 50)[:1800], 76).replace("\n", "\r\n")


@dataclass
class Connection:
    """What one client connection did: its timed span and the final reply to each message."""

    first: float = 0.0  # time.monotonic() just before the first MAIL
    last: float = 0.0  # just after the last message's final reply
    answers: Counter[int] = field(default_factory=Counter)
    error: str = ""  # the exception that ended the connection early, if any

    @property
    def sent(self) -> int:
        return sum(self.answers.values())


def message(i: int) -> bytes:
    """An Alertmanager-like notification, ~2 KB, with its own Message-ID."""
    headers = [
        f"From: Alertmanager <{SENDER}>",
        f"To: <{RECIPIENT}>",
        f"Subject: [FIRING:1] DiskFull (db-01 10.0.0.{i % 250} critical) #{i}",
        f"Date: {email.utils.formatdate(localtime=True)}",
        f"Message-ID: <{uuid.uuid4().hex}.{i}@tools.bench.test>",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=UTF-8",
        "Content-Transfer-Encoding: 7bit",
        "Auto-Submitted: auto-generated",
        "X-Mailer: bench/relay_clients",
    ]
    return ("\r\n".join(headers) + "\r\n\r\n" + BODY + "\r\n").encode()


def _send(smtp: smtplib.SMTP, data: bytes) -> int:
    """MAIL, RCPT, DATA: the final reply (a refusal on the way ends the transaction)."""
    code, _ = smtp.mail(SENDER)
    if code == 250:
        code, _ = smtp.rcpt(RECIPIENT)
    if code in (250, 251):
        try:
            code, _ = smtp.data(data)
        except smtplib.SMTPDataError as exc:  # DATA itself refused (no 354)
            code = exc.smtp_code
    if code != 250:
        smtp.rset()
    return code


def client(port: int, ca_file: str, n: int, start: Any, results: Any) -> None:
    """One connection sending ``n`` messages after ``start`` (a barrier); its Connection out."""
    done = Connection()
    try:
        messages = [message(i) for i in range(n)]
        with smtplib.SMTP("127.0.0.1", port, timeout=60) as smtp:
            smtp.starttls(context=ssl.create_default_context(cafile=ca_file))
            smtp.ehlo()
            smtp.login(USER, PASSWORD)  # AUTH PLAIN: smtplib's choice of what both offer
            start.wait(BARRIER_SECONDS)
            done.first = time.monotonic()
            for data in messages:
                done.answers[_send(smtp, data)] += 1
            done.last = time.monotonic()
    except Exception as exc:  # reported by the run, with the server's log
        start.abort()
        done.error = f"{type(exc).__name__}: {exc}"
    results.put(done)


def send_concurrently(port: int, ca_file: str, n: int, clients: int, kind: str) -> list[Connection]:
    """``clients`` connections of ``n`` messages each, in ``kind`` "threads" or "processes"."""
    start: Any  # a threading or a multiprocessing Barrier, Queue and worker class
    results: Any
    make: Any
    if kind == "threads":
        start, results, make = threading.Barrier(clients), queue.Queue(), threading.Thread
    else:  # spawn: the bench's own threads (the token endpoint) are not forked
        context = multiprocessing.get_context("spawn")
        start, results, make = context.Barrier(clients), context.Queue(), context.Process
    workers = [make(target=client, args=(port, ca_file, n, start, results)) for _ in range(clients)]
    for worker in workers:
        worker.start()
    connections = [results.get(timeout=BARRIER_SECONDS + 600) for _ in workers]
    for worker in workers:
        worker.join(30)
    return connections
