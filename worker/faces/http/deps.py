"""What every endpoint shares: the intake's state, the caller's key, the answers' shapes."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import Header, Query, Request, Response

from worker.credentials.profiles_source import Section
from worker.faces.http import gate, problems
from worker.faces.http.keys import ApiKeys, Caller
from worker.faces.http.routes import Route, routes_of
from worker.faces.http.schemas import Accepted
from worker.queue import Producer

log = logging.getLogger(__name__)

PROBLEM = {"model": dict[str, Any], "content": {problems.MEDIA_TYPE: {}}}
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {**PROBLEM, "description": "No API key, or not a valid one"},
    403: {**PROBLEM, "description": "The key may not use this profile or route"},
    413: {**PROBLEM, "description": "The body is over the size limit"},
    415: {**PROBLEM, "description": "The body is not sent as JSON (Content-Type)"},
    422: {**PROBLEM, "description": "The request is invalid; `field` names what to fix"},
    503: {**PROBLEM, "description": "The database, Redis or the broker is unavailable"},
}


class Intake:
    """What the endpoints work with: one per ``serve`` process.

    The routes follow the profiles file: checked from the document in use when
    the intake is made (a ConfigError then stops ``serve`` from starting), and
    again from the same read when the runtime picks up an edited file; routes
    that do not load keep the last good ones (and the reason is logged).
    """

    def __init__(self, runtime: Producer, keys: ApiKeys) -> None:
        self.runtime = runtime
        self.keys = keys
        policy = runtime.settings.callback_policy
        self._routes = Section(
            runtime.profiles_file,
            lambda document: routes_of(document, policy()),
            what="routes",
            log=log,
        )

    @property
    def routes(self) -> dict[str, Route]:
        return self._routes.current()


def intake(request: Request) -> Intake:
    state: Intake = request.app.state.intake
    return state


def caller(
    request: Request,
    authorization: Annotated[str | None, Header()] = None,
    api_key: Annotated[str | None, Query(description="For senders that cannot set headers")] = None,
) -> Caller:
    """The caller the gate found before the body was read (the parameters are for the docs)."""
    found: Caller | None = request.scope.get("state", {}).get(gate.STATE_KEY)
    if found is None:  # a path the gate leaves open
        found = intake(request).keys.caller(authorization, api_key)
    return found


def sending_profile(state: Intake, who: Caller, profile: str) -> None:
    """403 unless the key may send as ``profile``; 422, naming the key's own, if it does not exist.

    Checked here rather than left to ``notify``, whose error lists every profile.
    """
    who.check_profile(profile)
    known = state.runtime.profiles.by_name
    if profile not in known:
        names = ", ".join(who.usable_profiles(known)) or "none"
        raise problems.Problem(
            422, "Unknown profile", f"unknown profile '{profile}' (profiles: {names})",
            field="profile",
        )  # fmt: skip


def status_of(job_id: str) -> Accepted:
    return Accepted(id=job_id, status_url=f"/v1/notifications/{job_id}")


def accepted(job_id: str, response: Response) -> Accepted:
    answer = status_of(job_id)
    response.headers["Location"] = answer.status_url
    return answer
