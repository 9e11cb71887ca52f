"""Turn a validated webhook payload into a mail's subject, bodies and idempotency key.

Pure functions, no I/O: the HTTP intake validates the body, picks the route and
hands the result to ``notify``. One notification group becomes one mail, as
Alertmanager's own email notifier does. Rendering never fails with anything but
RenderError: payloads come from the network and route templates from people, so
whatever a template does at run time is reported as a one-line error naming it.

The idempotency key makes a re-sent group (Alertmanager's ``repeat_interval``,
its retries, or the replicas of an HA pair) one mail, while any change to the
group (a new alert, an alert resolved) is a new mail.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from jinja2 import Template

from worker.errors import MailpipeError
from worker.faces.http.payloads import AlertmanagerPayload, GrafanaPayload
from worker.faces.http.routes import HTML_ENVIRONMENT, TEXT_ENVIRONMENT, Route

SUBJECT_MAX_CHARS = 250
_ERROR_MAX_CHARS = 200
# Whitespace (which in Python's re includes VT, FF, NEL, U+2028 and U+2029) and the
# C0 and C1 control characters: none of them belongs in a one-line header.
_NOT_ONE_LINE = re.compile(r"[\s\x00-\x1f\x7f-\x9f]+")
# A lone surrogate (from a JSON "\ud800" escape) cannot be encoded into a mail at all.
_LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")

Payload = AlertmanagerPayload | GrafanaPayload


class RenderError(MailpipeError):
    """A template could not render this payload; the message names the template."""


@dataclass(frozen=True)
class Rendered:
    """What a webhook becomes: the mail's subject and bodies, and its idempotency key."""

    subject: str
    text: str
    html: str | None
    idempotency_key: str | None


def render_alertmanager(payload: AlertmanagerPayload, route: Route | None = None) -> Rendered:
    """One mail for an Alertmanager notification group, by the route's templates or ours."""
    return _render_group(payload, route, source="alertmanager", key_prefix="am")


def render_grafana(payload: GrafanaPayload, route: Route | None = None) -> Rendered:
    """One mail for a Grafana notification group; Grafana's title is the default subject."""
    return _render_group(payload, route, source="grafana", key_prefix="grafana")


def render_json(payload: Any, route: Route) -> Rendered:
    """Any JSON value, through the route's own templates (subject and text are required)."""
    subject_template, text_template = route.subject_template, route.text_template
    if subject_template is None or text_template is None:
        field = "subject_template" if subject_template is None else "text_template"
        raise RenderError(f"route {route.name!r}, {field}: required to render a JSON webhook")
    context = {"payload": payload}
    subject = _subject(_render(subject_template, context, route, "subject_template"), route)
    text = _render(text_template, context, route, "text_template")
    html = None
    if route.html_template is not None:
        html = _render(route.html_template, context, route, "html_template")
    return Rendered(subject=subject, text=text, html=html, idempotency_key=None)


def one_line(text: str) -> str:
    """``text`` as a header line: breaks and controls become one space, capped with "…"."""
    line = _NOT_ONE_LINE.sub(" ", _LONE_SURROGATE.sub("\ufffd", text)).strip()
    if len(line) > SUBJECT_MAX_CHARS:
        line = line[: SUBJECT_MAX_CHARS - 1].rstrip() + "…"
    return line


def default_subject(payload: Payload) -> str:
    """``[FIRING:3] DiskFull db-01`` or ``[RESOLVED] DiskFull db-01``, as Alertmanager writes it.

    The values are the group labels', alertname first; a group without group
    labels (``group_by: []``, Grafana's default) shows its common labels instead.
    """
    if isinstance(payload, GrafanaPayload) and one_line(payload.title):
        return one_line(payload.title)
    if payload.status == "firing":
        firing = sum(1 for alert in payload.alerts if alert.status == "firing")
        status = f"FIRING:{firing}"
    else:
        status = "RESOLVED"
    labels = payload.group_labels or payload.common_labels
    names = sorted(labels, key=lambda name: (name != "alertname", name))
    return one_line(" ".join([f"[{status}]", *(labels[name] for name in names)]))


def _render_group(
    payload: Payload, route: Route | None, *, source: str, key_prefix: str
) -> Rendered:
    data = payload.model_dump(mode="json", by_alias=True)
    context = {"payload": data, "alerts": data["alerts"], "status": payload.status}
    if route is not None and route.subject_template is not None:
        rendered = _render(route.subject_template, context, route, "subject_template")
        subject = _subject(rendered, route)
    else:
        subject = default_subject(payload)
    text_template = route.text_template if route is not None else None
    html_template = route.html_template if route is not None else None
    if text_template is not None:
        text = _render(text_template, context, route, "text_template")
    else:
        text = _render(TEXT_ENVIRONMENT.get_template(f"{source}.txt.j2"), context, None, "text")
    html: str | None
    if html_template is not None:
        html = _render(html_template, context, route, "html_template")
    elif text_template is not None:
        # The route wrote its own text: a built-in HTML part would hide it in most mail clients.
        html = None
    else:
        html = _render(HTML_ENVIRONMENT.get_template(f"{source}.html.j2"), context, None, "html")
    return Rendered(
        subject=subject,
        text=text,
        html=html,
        idempotency_key=_idempotency_key(key_prefix, payload, route),
    )


def _idempotency_key(prefix: str, payload: Payload, route: Route | None) -> str:
    # The receiver and the route keep two destinations of one group apart: notify
    # remembers keys per profile, and two routes may share a profile.
    alerts = sorted(
        (alert.fingerprint, alert.starts_at or "", alert.status) for alert in payload.alerts
    )
    material = [
        payload.group_key,
        payload.status,
        payload.receiver,
        route.name if route is not None else "",
        alerts,
    ]
    # ASCII-only JSON: unambiguous, and encodable whatever the strings hold.
    encoded = json.dumps(material, separators=(",", ":")).encode("ascii")
    return f"{prefix}:{hashlib.sha256(encoded).hexdigest()}"


def _subject(rendered: str, route: Route) -> str:
    subject = one_line(rendered)
    if not subject:
        raise RenderError(f"route {route.name!r}, subject_template: rendered an empty subject")
    return subject


def _render(template: Template, context: dict[str, Any], route: Route | None, field: str) -> str:
    try:
        rendered = template.render(context)
    # A route template is its author's code: whatever it raises (an undefined value
    # used in arithmetic, a sandbox refusal, a division by zero) is a render error.
    except Exception as exc:
        where = f"route {route.name!r}, {field}" if route is not None else f"built-in {field}"
        line = _template_line(exc.__traceback__)
        at = f" (line {line})" if line is not None else ""
        raise RenderError(f"{where}{at}: {_describe(exc)}") from exc
    return _LONE_SURROGATE.sub("\ufffd", rendered)


def _template_line(traceback: TracebackType | None) -> int | None:
    # Jinja rewrites tracebacks so that a template's frames carry its own line numbers.
    line = None
    while traceback is not None:
        if traceback.tb_frame.f_code.co_filename == "<template>":
            line = traceback.tb_lineno
        traceback = traceback.tb_next
    return line


def _describe(exc: Exception) -> str:
    message = " ".join(_LONE_SURROGATE.sub("\ufffd", str(exc)).split())
    text = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    if len(text) > _ERROR_MAX_CHARS:
        text = text[: _ERROR_MAX_CHARS - 1] + "…"
    return text
