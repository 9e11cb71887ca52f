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
    routes = {name: route.profile for name, route in state.routes.items()}
    allowed = set(who.reachable(runtime.profiles.by_name, routes))
    return [profile_status(runtime, p) for p in runtime.profiles if p.name in allowed]
