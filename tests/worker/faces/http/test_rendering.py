"""Alertmanager and Grafana groups rendered into one mail each: subjects, default bodies, keys."""

from __future__ import annotations

import pytest

from tests.worker.faces.http.samples import (
    GENERATOR,
    am,
    am_firing,
    am_resolved,
    am_truncated,
    grafana,
    grafana_firing,
    grafana_resolved,
    route,
)
from worker.faces.http.rendering import (
    SUBJECT_MAX_CHARS,
    one_line,
    render_alertmanager,
    render_grafana,
)
from worker.faces.http.routes import Route

# --- subjects ----------------------------------------------------------------


def test_a_firing_group_gets_alertmanagers_subject_with_the_firing_count() -> None:
    assert render_alertmanager(am(am_firing())).subject == "[FIRING:3] DiskFull db-01"


def test_a_resolved_group_gets_a_resolved_subject_without_a_count() -> None:
    assert render_alertmanager(am(am_resolved())).subject == "[RESOLVED] DiskFull db-01"


def test_the_count_is_of_firing_alerts_when_some_of_the_group_resolved() -> None:
    body = am_firing()
    body["alerts"][2]["status"] = "resolved"

    assert render_alertmanager(am(body)).subject == "[FIRING:2] DiskFull db-01"


def test_the_subject_lists_the_group_labels_alertname_first() -> None:
    body = am_firing()
    body["groupLabels"] = {"agent": "node-exporter", "alertname": "DiskFull", "zone": "eu-1"}

    assert render_alertmanager(am(body)).subject == "[FIRING:3] DiskFull node-exporter eu-1"


def test_a_group_without_group_labels_shows_its_common_labels() -> None:
    body = am_firing()
    body["groupLabels"] = {}

    assert render_alertmanager(am(body)).subject == "[FIRING:3] DiskFull db-01 node page"


def test_grafana_uses_its_title_as_the_subject_on_one_line() -> None:
    assert render_grafana(grafana(grafana_firing())).subject == "[FIRING:2] (blue)"
    assert render_grafana(grafana(grafana_resolved())).subject == "[RESOLVED] (blue)"


def test_grafana_without_a_title_gets_a_subject_like_alertmanagers() -> None:
    body = grafana_firing()
    body["title"] = ""

    assert render_grafana(grafana(body)).subject == "[FIRING:2] blue"


# --- default bodies ----------------------------------------------------------


def test_the_text_body_lists_every_alert_with_summary_description_and_runbook() -> None:
    text = render_alertmanager(am(am_firing())).text

    assert text.startswith("FIRING: 3 alerts firing.\n")
    assert "Group: alertname=DiskFull, instance=db-01" in text
    assert text.count("[FIRING] DiskFull") == 3
    assert "Summary:      Disk /var/lib/postgresql on db-01 is 97% full" in text
    # A multi-line description stays indented under its heading.
    assert (
        "Description:  /var/log on db-01 has less than 3% free.\n"
        "                PostgreSQL stops accepting writes when it is full." in text
    )
    assert "Runbook:      https://runbooks.example.com/disk-full" in text
    assert "Started:      2024-05-14 09:13:13 UTC" in text
    assert "mountpoint = /var/log" in text
    assert f"Source:       {GENERATOR}" in text
    assert "Ended:" not in text
    assert "not listed" not in text


def test_the_html_body_lists_every_alert_with_its_links() -> None:
    html = render_alertmanager(am(am_firing())).html

    assert html is not None
    assert html.count("[FIRING]") == 3
    assert "Disk / on db-01 is 97% full" in html
    assert '<a href="https://runbooks.example.com/disk-full">' in html
    assert '<a href="http://prometheus-0:9090/graph?g0.expr=' in html
    assert "&amp;g0.tab=1" in html


def test_a_resolved_group_says_so_and_when_each_alert_ended() -> None:
    rendered = render_alertmanager(am(am_resolved()))

    assert rendered.text.startswith("RESOLVED: all 3 alerts are resolved.\n")
    assert rendered.text.count("[RESOLVED] DiskFull") == 3
    assert "Ended:        2024-05-14 10:02:58 UTC" in rendered.text
    assert rendered.html is not None
    assert "<strong>RESOLVED</strong>: all 3 alerts are resolved." in rendered.html


def test_truncated_alerts_are_mentioned_in_both_bodies() -> None:
    rendered = render_alertmanager(am(am_truncated()))

    assert rendered.subject == "[FIRING:1] DiskFull db-01"
    assert "2 more alerts of this group are not listed" in rendered.text
    assert rendered.html is not None
    assert "2 more alerts</strong> of this group are not listed" in rendered.html


def test_grafana_bodies_show_silence_dashboard_and_panel_links_and_values() -> None:
    rendered = render_grafana(grafana(grafana_firing()))

    assert "[FIRING] High CPU usage" in rendered.text
    assert "Values:       B=44.2394, C=1" in rendered.text
    assert "Silence:      https://play.grafana.org/alerting/silence/new?" in rendered.text
    assert "Dashboard:    https://play.grafana.org/d/monitoring" in rendered.text
    assert "Panel:        https://play.grafana.org/d/monitoring?viewPanel=2" in rendered.text
    # The first alert has no dashboard: no empty line for it.
    assert rendered.text.count("Dashboard:") == 1
    assert "Started:      2021-10-12 07:51:03 UTC" in rendered.text
    assert rendered.html is not None
    assert '<a href="https://play.grafana.org/d/monitoring?viewPanel=2">' in rendered.html


def test_a_resolved_grafana_group_says_so() -> None:
    rendered = render_grafana(grafana(grafana_resolved()))

    assert rendered.text.startswith("RESOLVED: all 2 alerts are resolved.\n")
    assert "Ended:        2021-10-12 08:21:03 UTC" in rendered.text
    assert "Values:" not in rendered.text


def test_html_escapes_a_script_in_a_label_value() -> None:
    body = am_firing()
    body["alerts"][0]["labels"]["pod"] = "<script>alert('pwned')</script>"
    body["alerts"][0]["annotations"]["summary"] = '"><img src=x onerror=alert(1)>'

    html = render_alertmanager(am(body)).html

    assert html is not None
    assert "<script" not in html
    assert "&lt;script&gt;alert(&#39;pwned&#39;)&lt;/script&gt;" in html
    assert "<img" not in html


def test_only_http_urls_become_links_in_html() -> None:
    body = am_firing()
    body["alerts"][0]["generatorURL"] = "javascript:alert(1)"

    html = render_alertmanager(am(body)).html

    assert html is not None
    assert 'href="javascript:' not in html
    assert "javascript:alert(1)" in html


# --- idempotency keys ---------------------------------------------------------


def test_resend_of_the_same_group_keeps_the_idempotency_key() -> None:
    resend = am_firing()
    resend["alerts"].reverse()

    first = render_alertmanager(am(am_firing())).idempotency_key
    assert first == render_alertmanager(am(resend)).idempotency_key


def test_a_new_alert_in_the_group_changes_the_idempotency_key() -> None:
    grown = am_firing()
    grown["alerts"].append({**grown["alerts"][0], "fingerprint": "ffee00112233aabb"})

    assert render_alertmanager(am(grown)).idempotency_key != (
        render_alertmanager(am(am_firing())).idempotency_key
    )


def test_an_alert_resolved_in_the_group_changes_the_idempotency_key() -> None:
    changed = am_firing()
    changed["alerts"][1]["status"] = "resolved"

    keys = {
        render_alertmanager(am(body)).idempotency_key
        for body in (am_firing(), changed, am_resolved())
    }
    assert len(keys) == 3


def test_an_alert_firing_again_changes_the_idempotency_key() -> None:
    refired = am_firing()
    refired["alerts"][0]["startsAt"] = "2024-05-14T11:40:13.519331274Z"

    assert render_alertmanager(am(refired)).idempotency_key != (
        render_alertmanager(am(am_firing())).idempotency_key
    )


def test_two_routes_for_the_same_group_get_their_own_idempotency_keys() -> None:
    payload = am(am_firing())
    other = Route(name="managers", profile="relay", to=("managers@example.com",))

    assert render_alertmanager(payload, route()).idempotency_key != (
        render_alertmanager(payload, other).idempotency_key
    )


def test_idempotency_keys_are_a_sha256_prefixed_by_their_source() -> None:
    am_key = render_alertmanager(am(am_firing())).idempotency_key
    grafana_key = render_grafana(grafana(grafana_firing())).idempotency_key

    assert am_key is not None and grafana_key is not None
    prefix, digest = am_key.split(":")
    assert prefix == "am" and len(digest) == 64 and int(digest, 16) >= 0
    assert grafana_key.startswith("grafana:") and len(grafana_key) == len("grafana:") + 64


def test_a_grafana_resend_keeps_its_key_and_its_resolution_changes_it() -> None:
    first = render_grafana(grafana(grafana_firing())).idempotency_key

    assert first == render_grafana(grafana(grafana_firing())).idempotency_key
    assert first != render_grafana(grafana(grafana_resolved())).idempotency_key


# --- one line -------------------------------------------------------------------


@pytest.mark.parametrize(
    "separator", ["\r", "\n", "\r\n", "\x0b", "\x0c", "\x85", "\u2028", "\u2029", "\x00", "\t\x1b"]
)
def test_line_separators_and_controls_become_one_space(separator: str) -> None:
    assert one_line(f" [FIRING:1]{separator}{separator}DiskFull ") == "[FIRING:1] DiskFull"


def test_a_subject_of_exactly_the_cap_is_kept_whole() -> None:
    assert one_line("x" * SUBJECT_MAX_CHARS) == "x" * SUBJECT_MAX_CHARS
    assert one_line("x" * (SUBJECT_MAX_CHARS + 1)) == "x" * (SUBJECT_MAX_CHARS - 1) + "…"


def test_a_lone_surrogate_from_json_is_replaced_rather_than_breaking_the_mail() -> None:
    body = am_firing()
    body["groupLabels"]["instance"] = "db-\ud800"
    body["alerts"][0]["annotations"]["summary"] = "half \udc00 a pair"

    rendered = render_alertmanager(am(body))

    assert rendered.subject == "[FIRING:3] DiskFull db-\ufffd"
    for part in (rendered.subject, rendered.text, rendered.html or ""):
        part.encode("utf-8")
