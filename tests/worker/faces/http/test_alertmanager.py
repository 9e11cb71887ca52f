"""A real Alertmanager (Debian's prometheus-alertmanager) paging through ``mailpipe serve``."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.alertmanager import Alertmanager, wait
from tests.pipeline import API_KEY, Pipeline
from tests.worker.faces.http.conftest import Api


@pytest.fixture
def alertmanager(tmp_path: Path, api: Api) -> Iterator[Alertmanager]:
    (tmp_path / "key").write_text(API_KEY)
    manager = Alertmanager(
        tmp_path,
        f"""
  - name: mailpipe
    webhook_configs:
      - url: "{api.url}/v1/webhooks/alertmanager?route=oncall"
        send_resolved: true
        http_config:
          authorization:
            credentials_file: "{tmp_path / "key"}"
""",
    )
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
    wait(
        lambda: alertmanager.notifications_sent("webhook") >= 3, 60, "Alertmanager did not re-send"
    )
    assert len(pipeline.server.messages) == 1

    alertmanager.post(ends_at=datetime.now(UTC) - timedelta(seconds=1))
    wait(lambda: len(pipeline.server.messages) == 2, 60, f"no resolution; {alertmanager.log}")
    resolved = pipeline.server.messages[1].message
    assert resolved["Subject"] == "[RESOLVED] DiskFull db-01"
    assert "Disk / on db-01 is 97% full" in resolved.get_body(("plain",)).get_content()  # type: ignore[union-attr]
