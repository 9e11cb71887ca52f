"""The servers a benchmark run sends through: redis-server, the SMTP sink and front, tokens.

Started once per set of conditions (local, then WAN with delays) and shared by
every variant, so all of them meet the same sink and the same token endpoint.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.run.processes import REPO
from tests.fakes.token_endpoint import FormTokenEndpoint
from tests.support import RedisServer, free_port


class TokenServer:
    """A client-credentials token endpoint: counts requests, optional delay and lifetime."""

    def __init__(self, lifetime_seconds: int = 3600, delay_seconds: float = 0.0) -> None:
        self.requests: Counter[str] = Counter()
        self.times: dict[str, list[float]] = {}  # client_id -> request times (monotonic)
        self.lifetime_seconds = lifetime_seconds
        self._endpoint = FormTokenEndpoint(self.answer, delay_seconds=delay_seconds)
        self.url = self._endpoint.url

    def answer(self, form: dict[str, str]) -> tuple[int, dict[str, Any], dict[str, str]]:
        """Counts the request (and when), then issues a token of ``lifetime_seconds``."""
        client = form.get("client_id", "?")
        self.requests[client] += 1
        self.times.setdefault(client, []).append(time.monotonic())
        body = {
            "access_token": secrets.token_urlsafe(24),
            "token_type": "Bearer",
            "expires_in": self.lifetime_seconds,
        }
        return 200, body, {}

    def close(self) -> None:
        self._endpoint.close()


@dataclass
class Servers:
    redis_url: str
    front: str  # host:port of the sink's front: every variant sends through it
    sink_name: str
    tokens: TokenServer
    front_stats: Path  # the front's counts (bench/run/smtp_front.py --stats)

    def counts(self) -> dict[str, int]:
        """Messages the front passed to the sink, and the client's flights (round trips)."""
        try:
            return dict(json.loads(self.front_stats.read_text()))
        except FileNotFoundError:
            return {"messages": 0, "flights": 0}

    def round_trips(self, before: dict[str, int], messages: int) -> float:
        """SMTP round trips per message since ``before``, once the front has seen them all."""
        deadline = time.monotonic() + 10
        while (now := self.counts())["messages"] - before["messages"] < messages:
            if time.monotonic() > deadline:
                raise TimeoutError("the SMTP front did not count every message")
            time.sleep(0.05)
        return (now["flights"] - before["flights"]) / messages


@contextmanager
def servers(tmp: Path, *, reply_delay: float, token_delay: float) -> Iterator[Servers]:
    processes: list[subprocess.Popen[bytes]] = []
    cleanup: list[Callable[[], None]] = []
    try:
        redis_server = RedisServer(tmp)
        cleanup.append(redis_server.stop)
        redis_server.start()
        sink_port, front_port = free_port(), free_port()
        if shutil.which("smtp-sink"):
            user = ["-u", "nobody"] if os.geteuid() == 0 else []
            processes.append(
                subprocess.Popen(
                    ["smtp-sink", *user, "-c", f"127.0.0.1:{sink_port}", "1000"],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,  # "read timeout" for every idle connection
                )
            )
            sink_name = "Postfix smtp-sink (behind bench/run/smtp_front.py for AUTH)"
        else:
            from tests.fakes.smtp_server import FakeSmtpServer

            fake = FakeSmtpServer(tls=None, security="none", auth_required=False)
            fake.port = sink_port
            fake.start()
            cleanup.append(fake.stop)
            sink_name = "aiosmtpd (smtp-sink not installed: apt-get install postfix)"
        processes.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "bench.run.smtp_front",
                    "--listen",
                    str(front_port),
                    "--sink",
                    str(sink_port),
                    "--delay",
                    str(reply_delay),
                    "--stats",
                    str(tmp / f"front-{front_port}.json"),
                ],
                cwd=REPO,
                stdout=subprocess.DEVNULL,
            )
        )
        time.sleep(0.5)  # the front and the sink bind their ports
        tokens = TokenServer(delay_seconds=token_delay)
        cleanup.append(tokens.close)
        yield Servers(
            redis_url=redis_server.url,
            front=f"127.0.0.1:{front_port}",
            sink_name=sink_name,
            tokens=tokens,
            front_stats=tmp / f"front-{front_port}.json",
        )
    finally:
        for stop in cleanup:
            stop()
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(10)
