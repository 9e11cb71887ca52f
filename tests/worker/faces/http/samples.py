"""Webhook bodies as Alertmanager and Grafana really post them, for the rendering and API tests."""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path
from typing import Any

from worker.faces.http.payloads import AlertmanagerPayload, GrafanaPayload
from worker.faces.http.routes import Route, load_routes

# The body Alertmanager 0.27 posts to a webhook_config: one group of three alerts.
GENERATOR = (
    "http://prometheus-0:9090/graph?g0.expr=node_filesystem_avail_bytes+%2F+"
    "node_filesystem_size_bytes+%3C+0.03&g0.tab=1"
)
_RUNBOOK = "https://runbooks.example.com/disk-full"


def _disk_alert(device: str, mountpoint: str, started: str, fingerprint: str) -> dict[str, Any]:
    return {
        "status": "firing",
        "labels": {
            "alertname": "DiskFull",
            "device": device,
            "instance": "db-01",
            "job": "node",
            "mountpoint": mountpoint,
            "severity": "page",
        },
        "annotations": {
            "description": f"{mountpoint} on db-01 has less than 3% free.\n"
            "PostgreSQL stops accepting writes when it is full.",
            "runbook_url": _RUNBOOK,
            "summary": f"Disk {mountpoint} on db-01 is 97% full",
        },
        "startsAt": started,
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": GENERATOR,
        "fingerprint": fingerprint,
    }


AM_FIRING: dict[str, Any] = {
    "receiver": "mailpipe-oncall",
    "status": "firing",
    "alerts": [
        _disk_alert("/dev/nvme0n1p1", "/", "2024-05-14T09:12:43.519331274Z", "0e2c5f2b8d1a6c39"),
        _disk_alert(
            "/dev/nvme1n1",
            "/var/lib/postgresql",
            "2024-05-14T09:13:13.519331274Z",
            "5d3f1c2a9b7e4f10",
        ),
        _disk_alert(
            "/dev/nvme2n1", "/var/log", "2024-05-14T09:14:43.519331274Z", "a81b07e6c4d29f35"
        ),
    ],
    "groupLabels": {"alertname": "DiskFull", "instance": "db-01"},
    "commonLabels": {
        "alertname": "DiskFull",
        "instance": "db-01",
        "job": "node",
        "severity": "page",
    },
    "commonAnnotations": {"runbook_url": _RUNBOOK},
    "externalURL": "http://alertmanager-0:9093",
    "version": "4",
    "groupKey": '{}/{severity="page"}:{alertname="DiskFull", instance="db-01"}',
    "truncatedAlerts": 0,
}

# Grafana's documented webhook example (two alerts, no group labels), except that the
# second alert has the dashboard and panel links the example leaves empty.
GRAFANA_FIRING: dict[str, Any] = {
    "receiver": "My Super Webhook",
    "status": "firing",
    "orgId": 1,
    "alerts": [
        {
            "status": "firing",
            "labels": {"alertname": "High memory usage", "team": "blue", "zone": "us-1"},
            "annotations": {
                "description": "The system has high memory usage",
                "runbook_url": "https://myrunbook.com/runbook/1234",
                "summary": "This alert was triggered for zone us-1",
            },
            "startsAt": "2021-10-12T09:51:03.157076+02:00",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "https://play.grafana.org/alerting/1afz29v7z/edit",
            "fingerprint": "c6eadffa33fcdf37",
            "silenceURL": "https://play.grafana.org/alerting/silence/new?alertmanager=grafana"
            "&matchers=alertname%3DT2%2Cteam%3Dblue%2Czone%3Dus-1",
            "dashboardURL": "",
            "panelURL": "",
            "values": {"B": 44.23943737541908, "C": 1},
        },
        {
            "status": "firing",
            "labels": {"alertname": "High CPU usage", "team": "blue", "zone": "eu-1"},
            "annotations": {
                "description": "The system has high CPU usage",
                "runbook_url": "https://myrunbook.com/runbook/1234",
                "summary": "This alert was triggered for zone eu-1",
            },
            "startsAt": "2021-10-12T09:56:03.157076+02:00",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "https://play.grafana.org/alerting/d1rdpdv7k/edit",
            "fingerprint": "bc97ff14869b13e3",
            "silenceURL": "https://play.grafana.org/alerting/silence/new?alertmanager=grafana"
            "&matchers=alertname%3DT1%2Cteam%3Dblue%2Czone%3Deu-1",
            "dashboardURL": "https://play.grafana.org/d/monitoring",
            "panelURL": "https://play.grafana.org/d/monitoring?viewPanel=2",
            "values": {"B": 44.23943737541908, "C": 1},
        },
    ],
    "groupLabels": {},
    "commonLabels": {"team": "blue"},
    "commonAnnotations": {},
    "externalURL": "https://play.grafana.org/",
    "version": "1",
    "groupKey": "{}:{}",
    "truncatedAlerts": 0,
    "title": "[FIRING:2]  (blue)",
    "state": "alerting",
    "message": "**Firing**\n\nLabels:\n - alertname = T2\n - team = blue\n - zone = us-1\n",
}


def am_firing() -> dict[str, Any]:
    return copy.deepcopy(AM_FIRING)


def am_resolved() -> dict[str, Any]:
    """The same group once every alert resolved, as Alertmanager sends it with send_resolved."""
    body = am_firing()
    body["status"] = "resolved"
    for minute, alert in enumerate(body["alerts"]):
        alert["status"] = "resolved"
        alert["endsAt"] = f"2024-05-14T10:0{minute}:58.519331274Z"
    return body


def am_truncated() -> dict[str, Any]:
    """A webhook_config with max_alerts = 1: one alert listed, two left out."""
    body = am_firing()
    body["alerts"] = body["alerts"][:1]
    body["truncatedAlerts"] = 2
    return body


def grafana_firing() -> dict[str, Any]:
    return copy.deepcopy(GRAFANA_FIRING)


def grafana_resolved() -> dict[str, Any]:
    body = grafana_firing()
    body.update(status="resolved", title="[RESOLVED]  (blue)", state="ok", message="**Resolved**")
    for alert in body["alerts"]:
        alert.update(status="resolved", endsAt="2021-10-12T10:21:03.157076+02:00")
        # Go marshals the nil map of an alert without query results as null.
        alert["values"] = None
    return body


def am(body: dict[str, Any]) -> AlertmanagerPayload:
    return AlertmanagerPayload.model_validate(body)


def grafana(body: dict[str, Any]) -> GrafanaPayload:
    return GrafanaPayload.model_validate(body)


def route(**tables: str) -> Route:
    """A route named "oncall" with the given TOML fields (values as TOML literals)."""
    fields = "".join(f"{name} = {value}\n" for name, value in tables.items())
    document = tomllib.loads(
        f'[routes.oncall]\nprofile = "relay"\nto = ["oncall@example.com"]\n{fields}'
    )
    return load_routes(document, path=Path("profiles.toml"), profile_names=["relay"])["oncall"]


# --- payloads ----------------------------------------------------------------
