"""Webhook payload models: the senders' field names, defaults, and strict types."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from tests.worker.faces.http.samples import (
    AM_FIRING,
    GENERATOR,
    am,
    am_firing,
    grafana,
    grafana_firing,
)


def test_payloads_keep_the_senders_field_names() -> None:
    payload = am(am_firing())

    assert payload.group_key == AM_FIRING["groupKey"]
    assert payload.alerts[0].generator_url == GENERATOR
    assert payload.model_dump(mode="json", by_alias=True)["alerts"][0]["startsAt"] == (
        "2024-05-14T09:12:43.519331274Z"
    )


def test_fields_a_newer_sender_adds_are_ignored() -> None:
    body = grafana_firing()
    body["newField"] = {"any": "thing"}
    body["alerts"][0]["imageURL"] = "https://grafana.example.com/render/1.png"
    body["alerts"][0]["orgId"] = 1

    payload = grafana(body)

    assert payload.alerts[0].image_url == "https://grafana.example.com/render/1.png"


def test_optional_fields_are_defaulted_and_null_maps_read_as_empty() -> None:
    payload = am(
        {
            "status": "firing",
            "alerts": [{"status": "firing", "labels": {"alertname": "Up"}, "annotations": None}],
            "groupLabels": None,
        }
    )

    assert payload.truncated_alerts == 0
    assert payload.group_labels == {}
    assert payload.alerts[0].annotations == {}


@pytest.mark.parametrize(
    "change",
    [
        {"status": "pending"},
        {"truncatedAlerts": "2"},
        {"groupLabels": {"instance": 1}},
        {"alerts": [{"status": "firing", "labels": {}, "startsAt": "yesterday"}]},
        {"alerts": [{"status": "firing", "labels": {}, "startsAt": "2024-05-14T09:12:43"}]},
        {"alerts": "DiskFull"},
    ],
)
def test_payload_types_are_strict(change: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        am({**am_firing(), **change})
