"""The HTTP intake (``mailpipe serve``): the app, its middleware and error answers, its routers.

A face on ``notify``: every accepted request becomes a job through the same
path as the Python API and the CLI (validated, stored, then published). Each
group of endpoints is a router in its own module; this one only assembles them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI

from worker.faces.http import problems
from worker.faces.http.console import router as console
from worker.faces.http.deps import ERRORS, Intake
from worker.faces.http.gate import Gate
from worker.faces.http.health import router as health
from worker.faces.http.keys import ApiKeys
from worker.faces.http.limits import BodyLimit
from worker.faces.http.metrics import router as metrics
from worker.faces.http.notifications import router as notifications
from worker.faces.http.profiles_api import router as profiles_api
from worker.faces.http.webhooks import router as webhooks
from worker.queue import Producer


def create_app(
    runtime: Producer,
    keys: ApiKeys,
    *,
    on_shutdown: Callable[[], None] | None = None,
) -> FastAPI:
    """The intake's app; ``on_shutdown`` runs when the server stops (its own runtime's close)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        if on_shutdown is not None:
            on_shutdown()

    app = FastAPI(
        title="mailpipe",
        summary="Notifications in, email out: the HTTP intake of the mailpipe email worker.",
        version="1",
        responses=ERRORS,  # every endpoint's error answers, in every router
        lifespan=lifespan,
    )
    app.state.intake = Intake(runtime, keys)
    app.add_middleware(BodyLimit, max_bytes=runtime.settings.api_max_body_bytes)
    app.add_middleware(Gate, keys=keys)  # added last, so it runs first: before any body is read
    problems.install(app)
    # The order is the OpenAPI document's order of paths.
    for router in (webhooks, profiles_api, console, notifications, health, metrics):
        app.include_router(router)
    return app
