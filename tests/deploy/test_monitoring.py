"""The monitoring files shipped with GET /metrics: the Prometheus alerting rules, their unit
tests and the Grafana dashboard, checked with promtool and against the metrics mailpipe serves."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).parents[2]
RULES = REPO / "deploy" / "prometheus" / "alerts.yml"
RULE_TESTS = REPO / "deploy" / "prometheus" / "alerts_test.yml"
DASHBOARD = REPO / "deploy" / "grafana" / "mailpipe-dashboard.json"

# What `mailpipe serve` exposes at GET /metrics.
HISTOGRAMS = {"mailpipe_send_duration_seconds", "mailpipe_enqueue_to_accepted_seconds"}
SERVED = HISTOGRAMS | {
    "mailpipe_jobs_enqueued_total",
    "mailpipe_jobs_delivered_total",
    "mailpipe_jobs_failed_total",
    "mailpipe_attempts_total",
    "mailpipe_token_requests_total",
    "mailpipe_token_refresh_failures_total",
    "mailpipe_fallbacks_total",
    "mailpipe_callbacks_total",
    "mailpipe_profile_healthy",
    "mailpipe_refresh_token_idle_days_left",
    "mailpipe_queue_messages",
    "mailpipe_oldest_queued_job_age_seconds",
    "mailpipe_jobs",
    "mailpipe_up",
}
HISTOGRAM_SERIES = ("_bucket", "_sum", "_count")
RUNBOOK = "https://github.com/mailpipe/mailpipe/blob/main/README.md#troubleshooting"


def promtool() -> str:
    """promtool's path; its absence fails the test rather than skipping it."""
    found = shutil.which("promtool")
    if found is None:
        pytest.fail(
            "promtool not found: run `make test`, which installs it (the Debian package prometheus)"
        )
    return found


def run(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(argv), cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


def metric_names(text: str) -> set[str]:
    """Every mailpipe metric named in ``text``, histogram series folded into their histogram."""
    names = set()
    for name in re.findall(r"mailpipe_[a-z_]+", text):
        for suffix in HISTOGRAM_SERIES:
            if name.removesuffix(suffix) in HISTOGRAMS:
                name = name.removesuffix(suffix)
        names.add(name)
    return names


def alert_blocks() -> dict[str, str]:
    """Each alert of alerts.yml by name, with the text of its rule."""
    parts = re.split(r"^\s*- alert: *", RULES.read_text(), flags=re.MULTILINE)[1:]
    return {part.split(maxsplit=1)[0]: part for part in parts}


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def panels(container: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those inside (collapsed) rows."""
    for panel in container.get("panels", []):
        yield panel
        yield from panels(panel)


def dashboard_queries() -> list[str]:
    return [target["expr"] for panel in panels(dashboard()) for target in panel.get("targets", [])]


def test_promtool_accepts_the_alerting_rules() -> None:
    result = run(promtool(), "check", "rules", str(RULES.relative_to(REPO)), cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_blocks())} rules found" in result.stdout


def test_the_alerting_rules_pass_their_unit_tests() -> None:
    result = run(promtool(), "test", "rules", RULE_TESTS.name, cwd=RULE_TESTS.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_is_unit_tested_and_quiet_for_a_healthy_fleet() -> None:
    tests = RULE_TESTS.read_text()
    tested = set(re.findall(r"alertname: *(\w+)", tests))
    assert tested == set(alert_blocks())
    assert "- name: a healthy fleet fires nothing\n" in tests
    healthy = tests.split("- name: a healthy fleet fires nothing", 1)[1].split("\n  - name:")[0]
    assert set(re.findall(r"alertname: *(\w+)", healthy)) == set(alert_blocks())
    assert "exp_labels" not in healthy


def test_every_alert_has_a_severity_a_summary_a_description_and_the_runbook() -> None:
    assert len(alert_blocks()) >= 7
    for name, rule in alert_blocks().items():
        assert re.search(r"^\s+severity: (page|ticket)$", rule, re.MULTILINE), name
        assert re.search(r"^\s+summary: ", rule, re.MULTILINE), name
        assert re.search(r"^\s+description: ", rule, re.MULTILINE), name
        assert f"runbook_url: {RUNBOOK}\n" in rule, name


def test_the_alerting_rules_and_their_tests_name_only_metrics_that_mailpipe_serves() -> None:
    for path in (RULES, RULE_TESTS):
        named = metric_names(path.read_text())
        assert named, path.name
        assert named <= SERVED, f"{path.name}: {sorted(named - SERVED)}"


def test_the_dashboard_queries_only_metrics_that_mailpipe_serves() -> None:
    queries = dashboard_queries()
    assert queries
    for expr in queries:
        named = metric_names(expr)
        assert named, expr
        assert named <= SERVED, f"{expr}: {sorted(named - SERVED)}"
    assert metric_names("\n".join(queries)) == SERVED, "every served metric is charted"


def test_every_dashboard_query_is_valid_promql(tmp_path: Path) -> None:
    # Grafana's variables replaced by what they stand for, each query a recording rule.
    rules = ["groups:", "  - name: dashboard", "    rules:"]
    for number, expr in enumerate(dashboard_queries()):
        expr = expr.replace("$__rate_interval", "5m").replace("$profile", ".*")
        rules += [f"      - record: dashboard_query_{number}", f"        expr: {json.dumps(expr)}"]
    (tmp_path / "dashboard.yml").write_text("\n".join(rules) + "\n")
    result = run(promtool(), "check", "rules", "dashboard.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_dashboard_picks_its_data_source_and_profiles_from_variables() -> None:
    board = dashboard()
    assert board["schemaVersion"] >= 36
    variables = {variable["name"]: variable for variable in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    profile = variables["profile"]
    assert profile["query"] == "label_values(mailpipe_jobs_enqueued_total, profile)"
    assert profile["multi"] and profile["includeAll"]
    ids = [panel["id"] for panel in panels(board)]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    for panel in panels(board):
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"], panel["title"]
            if "profile" in target["legendFormat"]:
                assert '{profile=~"$profile"}' in target["expr"], target["expr"]
