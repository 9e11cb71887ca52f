"""Properties: any Alertmanager or Grafana group renders safely, or fails with a RenderError."""

from __future__ import annotations

import copy
import unicodedata
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.worker.faces.http.samples import GENERATOR, am, grafana, route
from worker.faces.http.rendering import (
    SUBJECT_MAX_CHARS,
    Rendered,
    RenderError,
    render_alertmanager,
    render_grafana,
)
from worker.faces.http.routes import Route

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
