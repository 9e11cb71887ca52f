"""Alertmanager, Grafana and JSON webhooks rendered into one mail per notification group."""

from __future__ import annotations

import copy
import unicodedata
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from tests.worker.faces.http.samples import (
    AM_FIRING,
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
from worker.errors import MailpipeError
from worker.faces.http.rendering import (
    SUBJECT_MAX_CHARS,
    Rendered,
    RenderError,
    one_line,
    render_alertmanager,
    render_grafana,
    render_json,
)
from worker.faces.http.routes import Route


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


# --- route templates ----------------------------------------------------------


def test_a_routes_templates_replace_the_defaults_and_see_payload_alerts_and_status() -> None:
    custom = route(
        subject_template='"{{ status }} {{ payload.groupKey }} {{ alerts | length }}"',
        text_template='"{% for a in alerts %}{{ a.labels.mountpoint }};{% endfor %}"',
        html_template='"<p>{{ payload.commonAnnotations.runbook_url }}</p>"',
    )

    rendered = render_alertmanager(am(am_firing()), custom)

    assert rendered.subject == f"firing {AM_FIRING['groupKey']} 3"
    assert rendered.text == "/;/var/lib/postgresql;/var/log;"
    assert rendered.html == "<p>https://runbooks.example.com/disk-full</p>"


def test_a_route_with_only_a_subject_template_keeps_the_default_bodies() -> None:
    rendered = render_grafana(grafana(grafana_firing()), route(subject_template='"Grafana"'))

    assert rendered.subject == "Grafana"
    assert rendered.text == render_grafana(grafana(grafana_firing())).text
    assert rendered.html is not None


def test_a_route_with_its_own_text_and_no_html_sends_text_only() -> None:
    rendered = render_alertmanager(am(am_firing()), route(text_template='"{{ status }}"'))

    assert rendered.text == "firing"
    assert rendered.html is None


def test_an_undefined_variable_renders_empty() -> None:
    custom = route(subject_template='"[{{ payload.nothing.deeper }}] {{ nope }} ok"')

    assert render_alertmanager(am(am_firing()), custom).subject == "[] ok"


@pytest.mark.parametrize(
    ("template", "error"),
    [
        ('"{{ payload.nothing + 1 }}"', "UndefinedError"),
        ('"{{ 1 // 0 }}"', "ZeroDivisionError"),
        ('"{{ alerts.append(1) }}"', "SecurityError"),
        ("\"{{ '%d' % 'x' }}\"", "TypeError"),
    ],
)
def test_a_template_failing_at_render_time_is_a_render_error_naming_the_field(
    template: str, error: str
) -> None:
    with pytest.raises(RenderError) as caught:
        render_alertmanager(am(am_firing()), route(text_template=template))

    message = str(caught.value)
    assert message.startswith(f"route 'oncall', text_template (line 1): {error}")
    assert "\n" not in message
    assert isinstance(caught.value, MailpipeError)


def test_a_subject_template_is_made_one_line_and_capped() -> None:
    custom = route(
        subject_template="\"{{ status }}\\r\\n\\u2028Bcc: x@evil.example {{ 'x' * 400 }}\""
    )

    subject = render_alertmanager(am(am_firing()), custom).subject

    assert subject.startswith("firing Bcc: x@evil.example xxx")
    assert len(subject) == SUBJECT_MAX_CHARS and subject.endswith("…")


def test_a_subject_template_that_renders_nothing_is_a_render_error() -> None:
    with pytest.raises(RenderError, match="subject_template: rendered an empty subject"):
        render_alertmanager(am(am_firing()), route(subject_template='"{{ payload.missing }}"'))


# --- JSON webhooks --------------------------------------------------------------


def test_a_json_webhook_renders_through_the_routes_templates() -> None:
    custom = route(
        subject_template='"Backup {{ payload.job }} {{ payload.result | upper }}"',
        text_template='"{{ payload.job }} took {{ payload.seconds }} s{{ payload.note }}"',
        html_template='"<p>{{ payload.host }}</p>"',
    )
    body = {"job": "nightly", "result": "failed", "seconds": 4812, "note": None, "host": "<b>"}

    rendered = render_json(body, custom)

    assert rendered == Rendered(
        subject="Backup nightly FAILED",
        text="nightly took 4812 s",
        html="<p>&lt;b&gt;</p>",
        idempotency_key=None,
    )


def test_a_json_webhook_accepts_any_json_value() -> None:
    custom = route(
        subject_template='"{{ payload | length }} items"', text_template='"{{ payload[0] }}"'
    )

    assert render_json(["a", "b"], custom).subject == "2 items"


@pytest.mark.parametrize("missing", ["subject_template", "text_template"])
def test_a_json_webhook_needs_a_subject_and_a_text_template(missing: str) -> None:
    templates = {"subject_template": '"s"', "text_template": '"t"'}
    del templates[missing]

    with pytest.raises(RenderError, match=f"route 'oncall', {missing}: required"):
        render_json({}, route(**templates))


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


# --- properties -------------------------------------------------------------------

_NASTY = [
    "\r", "\n", "\r\n", "\x00", "\x0b", "\x0c", "\x1b", "\x7f", "\x85", "\u2028", "\u2029",
    "\t", " ", "<script>", "<SCRIPT src=//evil.example>", "</script>", "&", '"', "'", "{{ x }}",
    "{%", "x" * 120, "é", "警报",
]  # fmt: skip
_TEXT = st.lists(st.one_of(st.sampled_from(_NASTY), st.text(max_size=8)), max_size=6).map("".join)
_LABELS = st.dictionaries(_TEXT, _TEXT, max_size=4)
_STATUS = st.sampled_from(["firing", "resolved"])


@st.composite
def _alert_bodies(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "status": draw(_STATUS),
        "labels": {"alertname": draw(_TEXT), **draw(_LABELS)},
        "annotations": draw(_LABELS),
        "startsAt": "2024-05-14T09:12:43.519331274Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": draw(st.sampled_from([GENERATOR, "javascript:alert(1)", ""])),
        "fingerprint": draw(st.text(alphabet="0123456789abcdef", min_size=16, max_size=16)),
    }


@st.composite
def _group_bodies(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "receiver": draw(_TEXT),
        "status": draw(_STATUS),
        "alerts": draw(st.lists(_alert_bodies(), min_size=1, max_size=3)),
        "groupLabels": draw(_LABELS),
        "commonLabels": draw(_LABELS),
        "commonAnnotations": draw(_LABELS),
        "externalURL": draw(_TEXT),
        "groupKey": draw(_TEXT),
        "truncatedAlerts": draw(st.integers(min_value=0, max_value=5)),
    }


def _assert_safe(rendered: Rendered) -> None:
    subject = rendered.subject
    assert len(subject) <= SUBJECT_MAX_CHARS
    assert subject == subject.strip()
    assert not any(unicodedata.category(c) in ("Cc", "Zl", "Zp", "Cs") for c in subject)
    assert "<script" not in (rendered.html or "").lower()


_PROPERTY = settings(max_examples=100, deadline=None, database=None)
_ROUTE_WITH_TEMPLATES = Route(
    name="oncall",
    profile="relay",
    to=("oncall@example.com",),
    subject_template=route(
        subject_template='"{{ alerts[0].labels.alertname }} {{ payload.commonLabels }}"'
    ).subject_template,
    html_template=route(
        html_template='"<p>{% for a in alerts %}{{ a.labels }}{{ a.annotations }}{% endfor %}</p>"'
    ).html_template,
)


@_PROPERTY
@given(body=_group_bodies(), use_route=st.booleans())
def test_any_alertmanager_group_renders_safely_or_fails_with_a_render_error(
    body: dict[str, Any], use_route: bool
) -> None:
    try:
        rendered = render_alertmanager(am(body), _ROUTE_WITH_TEMPLATES if use_route else None)
    except RenderError:
        return
    _assert_safe(rendered)


@_PROPERTY
@given(body=_group_bodies(), title=_TEXT, values=st.dictionaries(_TEXT, st.floats(), max_size=3))
def test_any_grafana_group_renders_safely_or_fails_with_a_render_error(
    body: dict[str, Any], title: str, values: dict[str, float]
) -> None:
    body.update(title=title, orgId=1, version="1")
    for alert in body["alerts"]:
        alert.update(silenceURL=title, dashboardURL=GENERATOR, values=values)
    try:
        rendered = render_grafana(grafana(body))
    except RenderError:
        return
    _assert_safe(rendered)


@_PROPERTY
@given(body=_group_bodies(), order=st.randoms(use_true_random=False))
def test_the_idempotency_key_does_not_depend_on_the_order_of_the_alerts(
    body: dict[str, Any], order: Any
) -> None:
    shuffled = copy.deepcopy(body)
    order.shuffle(shuffled["alerts"])

    assert render_alertmanager(am(body)).idempotency_key == (
        render_alertmanager(am(shuffled)).idempotency_key
    )
