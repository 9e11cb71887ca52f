"""A real Alertmanager (Debian's prometheus-alertmanager) for the tests, with a receiver given."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.support import free_port

BINARY = "prometheus-alertmanager"
STARTED = datetime.now(UTC) - timedelta(minutes=1)


def wait(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(what)
        time.sleep(0.2)


class Alertmanager:
    """Groups alerts by alertname and instance, with short intervals so a re-send happens soon."""

    def __init__(self, directory: Path, receiver: str) -> None:
        """``receiver``: the YAML of one receiver named ``mailpipe`` (webhook or email)."""
        binary = shutil.which(BINARY) or shutil.which("alertmanager")
        if binary is None:
            pytest.fail(f"{BINARY} is not installed: run `make test`, which installs it")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = directory / "alertmanager.yml"
        config.write_text(f"""
route:
  receiver: mailpipe
  group_by: [alertname, instance]
  group_wait: 1s
  group_interval: 2s
  repeat_interval: 3s
receivers:
{receiver}
""")
        self.log = directory / "alertmanager.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [binary, f"--config.file={config}", f"--storage.path={directory / 'data'}",
                 f"--web.listen-address=127.0.0.1:{self.port}", "--cluster.listen-address="],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        wait(self._ready, 30, f"Alertmanager did not start: see {self.log}")

    def _ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def post(self, ends_at: datetime) -> None:
        alert = {
            "labels": {"alertname": "DiskFull", "instance": "db-01", "severity": "page"},
            "annotations": {"summary": "Disk / on db-01 is 97% full"},
            "startsAt": STARTED.isoformat(),
            "endsAt": ends_at.isoformat(),
            "generatorURL": "http://prometheus.example.test/graph?g0.expr=disk",
        }
        response = httpx.post(f"{self.url}/api/v2/alerts", json=[alert], timeout=10)
        assert response.status_code == 200, response.text

    def notifications_sent(self, integration: str) -> int:
        text = httpx.get(f"{self.url}/metrics", timeout=10).text
        pattern = rf'alertmanager_notifications_total\{{integration="{integration}"[^}}]*\}} (\S+)'
        return sum(int(float(v)) for v in re.findall(pattern, text))

    def failures(self, integration: str) -> int:
        text = httpx.get(f"{self.url}/metrics", timeout=10).text
        pattern = (
            rf'alertmanager_notifications_failed_total\{{integration="{integration}"[^}}]*\}} (\S+)'
        )
        return sum(int(float(v)) for v in re.findall(pattern, text))

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(20)
