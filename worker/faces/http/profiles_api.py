"""``GET /v1/profiles``: the health of each profile a key may use, as `profiles status --json`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from worker.faces.http.deps import caller, intake
from worker.faces.http.keys import Caller
from worker.faces.profile_status import profile_status

router = APIRouter()


@router.get("/v1/profiles")
def get_profiles(request: Request, who: Annotated[Caller, Depends(caller)]) -> list[dict[str, Any]]:
    """The health of each profile the key may send through (directly or by one of its routes):
    token, last refresh, refresh token; an admin key sees every profile."""
    state = intake(request)
    runtime = state.runtime
    by_route = {r.profile for name, r in state.routes.items() if who.may_use_route(name)}
    return [
        profile_status(runtime, p)
        for p in runtime.profiles
        if who.admin or who.may_send_as(p.name) or p.name in by_route
    ]
