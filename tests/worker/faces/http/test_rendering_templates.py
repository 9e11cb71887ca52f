"""A route's own templates: for Alertmanager and Grafana groups, and for any JSON webhook."""

from __future__ import annotations

import pytest

from tests.worker.faces.http.samples import (
    AM_FIRING,
    am,
    am_firing,
    grafana,
    grafana_firing,
    route,
)
from worker.errors import MailpipeError
from worker.faces.http.rendering import (
    SUBJECT_MAX_CHARS,
    Rendered,
    RenderError,
    render_alertmanager,
    render_grafana,
    render_json,
)

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


# --- no internal reprs ------------------------------------------------------------


def test_a_payload_field_named_like_a_method_is_the_field() -> None:
    grafana_route = route(text_template='"{% for a in alerts %}{{ a.values.C }};{% endfor %}"')
    json_route = route(
        subject_template="""'{{ payload.title }}: {{ payload.items | join(",") }}'""",
        text_template="""'{{ payload.values }} {{ payload.get("missing", "-") }}'""",
    )
    body = {"items": ["db-01", "db-02"], "values": [1, 2], "title": "Disk full"}

    assert render_grafana(grafana(grafana_firing()), grafana_route).text == "1.0;1.0;"
    rendered = render_json(body, json_route)
    assert (rendered.subject, rendered.text) == ("Disk full: db-01,db-02", "[1, 2] -")


@pytest.mark.parametrize(
    ("payload", "template"),
    [
        ("db-01 is down", '"{{ payload.title }}"'),  # a JSON string: str.title
        ({}, '"{{ payload.items }}"'),
        ({"a": 1}, '"{{ [payload.keys] }}"'),
        ({}, '"{{ lipsum }}"'),
    ],
)
def test_a_template_that_would_write_a_method_is_a_render_error_not_its_repr(
    payload: object, template: str
) -> None:
    with pytest.raises(RenderError) as caught:
        render_json(payload, route(subject_template='"s"', text_template=template))

    assert "cannot be written into the mail" in str(caught.value)
    assert "0x" not in str(caught.value)
