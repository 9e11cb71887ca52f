"""Webhooks: Alertmanager, Grafana and any JSON, each rendered into one notification.

The destination is a route (``?route=NAME``: profile, recipients, templates
from the profiles file) or ``?profile=NAME&to=ADDR…``. The idempotency key
comes from the group (``rendering``), so a sender's re-send of the same group
pages nobody twice while a real change does. A route template that fails at
request time must not lose the page: the built-in rendering is used instead
and the failure is logged and written at the top of the message.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request, Response

from worker.faces.http.deps import ERRORS, Intake, accepted, caller, intake, sending_profile
from worker.faces.http.keys import Caller
from worker.faces.http.payloads import AlertmanagerPayload, GrafanaPayload
from worker.faces.http.problems import Problem
from worker.faces.http.rendering import (
    Rendered,
    RenderError,
    render_alertmanager,
    render_grafana,
    render_json,
)
from worker.faces.http.routes import Route
from worker.faces.http.schemas import Accepted
from worker.intake import notify

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"], responses=ERRORS)

RouteName = Annotated[str | None, Query(description="A [routes.NAME] of the profiles file")]
ProfileName = Annotated[str | None, Query(description="Instead of a route: the sending profile")]
Recipients = Annotated[list[str], Query(description="With profile: the recipients")]
_JSON_FALLBACK_CHARS = 100_000


@router.post("/alertmanager", status_code=202, response_model=Accepted)
def alertmanager(
    payload: AlertmanagerPayload,
    request: Request,
    response: Response,
    who: Annotated[Caller, Depends(caller)],
    route: RouteName = None,
    profile: ProfileName = None,
    to: Recipients = [],  # noqa: B006 (FastAPI copies query defaults)
) -> Accepted:
    """An Alertmanager notification group (webhook version 4) as one email."""
    target = destination(intake(request), who, route, profile, to)
    rendered = _render(
        target,
        lambda: render_alertmanager(payload, target),
        lambda: render_alertmanager(payload, None),
    )
    return accepted(_queue(intake(request), who, target, rendered), response)


@router.post("/grafana", status_code=202, response_model=Accepted)
def grafana(
    payload: GrafanaPayload,
    request: Request,
    response: Response,
    who: Annotated[Caller, Depends(caller)],
    route: RouteName = None,
    profile: ProfileName = None,
    to: Recipients = [],  # noqa: B006
) -> Accepted:
    """A Grafana alerting notification (webhook contact point) as one email."""
    target = destination(intake(request), who, route, profile, to)
    rendered = _render(
        target, lambda: render_grafana(payload, target), lambda: render_grafana(payload, None)
    )
    return accepted(_queue(intake(request), who, target, rendered), response)


@router.post("/json", status_code=202, response_model=Accepted)
def any_json(
    request: Request,
    response: Response,
    who: Annotated[Caller, Depends(caller)],
    route: Annotated[str, Query(description="A route with subject and text templates")],
    payload: Annotated[Any, Body()] = None,
) -> Accepted:
    """Any JSON body, rendered by the route's templates (it sees it as `payload`)."""
    target = destination(intake(request), who, route, None, [])
    rendered = _render(
        target, lambda: render_json(payload, target), lambda: _raw_json(target, payload)
    )
    return accepted(_queue(intake(request), who, target, rendered), response)


def destination(
    state: Intake, who: Caller, route: str | None, profile: str | None, to: list[str]
) -> Route:
    """The route named, or an ad-hoc one for ``?profile=…&to=…``; checked against the key.

    A route brings its profile and recipients: a key given the route may use
    them through it, and only through it.
    """
    if route is not None:
        who.check_route(route)  # first: a key learns nothing of routes it may not use
        found = state.routes.get(route)
        if found is None:
            known = ", ".join(who.usable_routes(state.routes)) or "none"
            raise Problem(422, "Unknown route", f"unknown route '{route}' (routes: {known})",
                          field="route")  # fmt: skip
        return found
    if profile is None or not to:
        raise Problem(
            422,
            "No destination",
            "give ?route=NAME, or ?profile=NAME with one or more &to=ADDR",
            field="route",
        )
    sending_profile(state, who, profile)
    # The name keeps two ad-hoc destinations of one group apart in the idempotency key.
    scope = hashlib.sha256("\x00".join(sorted(to)).encode()).hexdigest()[:16]
    return Route(name=f"adhoc-{scope}", profile=profile, to=tuple(to))


def _render(
    target: Route, render: Callable[[], Rendered], builtin: Callable[[], Rendered]
) -> Rendered:
    try:
        return render()
    except RenderError as exc:
        log.warning("route %s: %s; sending the built-in rendering instead", target.name, exc)
        note = f"(mailpipe: this route's template failed: {exc}; showing the default rendering)"
    default = builtin()
    return Rendered(default.subject, f"{note}\n\n{default.text}", None, default.idempotency_key)


def _raw_json(target: Route, payload: Any) -> Rendered:
    body = json.dumps(payload, indent=2, ensure_ascii=False)[:_JSON_FALLBACK_CHARS]
    return Rendered(f"Webhook for route {target.name}", body, None, None)


def _queue(state: Intake, who: Caller, target: Route, rendered: Rendered) -> str:
    return notify(
        target.profile,
        to=target.to,
        cc=target.cc,
        bcc=target.bcc,
        subject=rendered.subject,
        text=rendered.text,
        html=rendered.html,
        idempotency_key=rendered.idempotency_key,
        priority=target.priority,
        callback_url=target.callback_url,
        api_key_name=who.name,
        runtime=state.runtime,
    )
