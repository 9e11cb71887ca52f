"""A real Alertmanager (Debian's prometheus-alertmanager) paging through ``mailpipe serve``."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.pipeline import API_KEY, Pipeline
from tests.support import free_port
from tests.worker.faces.http.conftest import Api

BINARY = "prometheus-alertmanager"


class Alertmanager:
    def __init__(self, directory: Path, webhook: str) -> None:
        binary = shutil.which(BINARY) or shutil.which("alertmanager")
        if binary is None:
            pytest.fail(f"{BINARY} is not installed: run `make test`, which installs it")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        (directory / "key").write_text(API_KEY)
        config = directory / "alertmanager.yml"
        # Short intervals so a re-send of the same group happens within the test.
        config.write_text(f"""
route:
  receiver: mailpipe
  group_by: [alertname, instance]
  group_wait: 1s
  group_interval: 2s
  repeat_interval: 3s
receivers:
  - name: mailpipe
    webhook_configs:
      - url: "{webhook}"
        send_resolved: true
        http_config:
          authorization:
            credentials_file: "{directory / "key"}"
""")
        self.log = directory / "alertmanager.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [binary, f"--config.file={config}", f"--storage.path={directory / 'data'}",
                 f"--web.listen-address=127.0.0.1:{self.port}", "--cluster.listen-address="],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        wait(lambda: self._ready(), 30, f"Alertmanager did not start: see {self.log}")

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

    def webhooks_sent(self) -> int:
        text = httpx.get(f"{self.url}/metrics", timeout=10).text
        pattern = r'alertmanager_notifications_total\{integration="webhook"[^}]*\} (\S+)'
        return sum(int(float(v)) for v in re.findall(pattern, text))

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(20)


STARTED = datetime.now(UTC) - timedelta(minutes=1)


def wait(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(what)
        time.sleep(0.2)


@pytest.fixture
def alertmanager(tmp_path: Path, api: Api) -> Iterator[Alertmanager]:
    manager = Alertmanager(tmp_path, f"{api.url}/v1/webhooks/alertmanager?route=oncall")
    yield manager
    manager.stop()


def test_an_alert_pages_once_through_resends_and_its_resolution_follows(
    alertmanager: Alertmanager, pipeline: Pipeline
) -> None:
    pipeline.start_worker()
    alertmanager.post(ends_at=datetime.now(UTC) + timedelta(minutes=10))

    wait(lambda: len(pipeline.server.messages) == 1, 60, f"no page; {alertmanager.log}")
    page = pipeline.server.messages[0]
    assert page.message["Subject"] == "[FIRING:1] DiskFull db-01"
    assert page.rcpt_tos == ["oncall@example.test"]
    # Alertmanager re-sends the unchanged group every repeat_interval: nobody is paged again.
    wait(lambda: alertmanager.webhooks_sent() >= 3, 60, "Alertmanager did not re-send")
    assert len(pipeline.server.messages) == 1

    alertmanager.post(ends_at=datetime.now(UTC) - timedelta(seconds=1))
    wait(lambda: len(pipeline.server.messages) == 2, 60, f"no resolution; {alertmanager.log}")
    resolved = pipeline.server.messages[1].message
    assert resolved["Subject"] == "[RESOLVED] DiskFull db-01"
    assert "Disk / on db-01 is 97% full" in resolved.get_body(("plain",)).get_content()  # type: ignore[union-attr]
