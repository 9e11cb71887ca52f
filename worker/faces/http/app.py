"""The HTTP intake (``mailpipe serve``): notifications, webhooks, health and metrics.

A face on ``notify``: every accepted request becomes a job through the same
path as the Python API and the CLI (validated, stored, then published), and
a ``202`` is answered only after the job is stored. Endpoints are plain
functions run in FastAPI's thread pool, because ``notify`` does blocking I/O.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Request, Response
from fastapi.responses import PlainTextResponse

from worker.faces.http import problems
from worker.faces.http.batch_rate import check_batch_rate
from worker.faces.http.console import router as console
from worker.faces.http.deps import (
    ERRORS,
    PROBLEM,
    Intake,
    accepted,
    caller,
    intake,
    sending_profile,
    status_of,
)
from worker.faces.http.gate import Gate
from worker.faces.http.health import readiness
from worker.faces.http.keys import ApiKeys, Caller
from worker.faces.http.limits import BodyLimit
from worker.faces.http.metrics import exposition
from worker.faces.http.profiles_api import router as profiles_api
from worker.faces.http.routes import Route
from worker.faces.http.schemas import (
    Accepted,
    BatchAccepted,
    BatchIn,
    Health,
    NotificationIn,
)
from worker.faces.http.webhooks import router as webhooks
from worker.faces.reports import job_dict
from worker.intake import notify, notify_many
from worker.queue import Producer


def create_app(
    runtime: Producer,
    routes: dict[str, Route],
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
        responses=ERRORS,
        lifespan=lifespan,
    )
    app.state.intake = Intake(runtime, routes, keys)
    app.add_middleware(BodyLimit, max_bytes=runtime.settings.api_max_body_bytes)
    app.add_middleware(Gate, keys=keys)  # added last, so it runs first: before any body is read
    problems.install(app)
    app.include_router(webhooks)
    app.include_router(profiles_api)
    app.include_router(console)

    @app.post("/v1/notifications", status_code=202, response_model=Accepted)
    def post_notification(
        body: NotificationIn,
        request: Request,
        response: Response,
        who: Annotated[Caller, Depends(caller)],
        idempotency_key: Annotated[str | None, Header()] = None,
    ) -> Accepted:
        """Queue a notification; a repeated Idempotency-Key returns the first job."""
        sending_profile(intake(request), who, body.profile)
        job_id = notify(
            body.profile,
            **body.fields(),
            idempotency_key=idempotency_key,
            priority=body.priority,
            callback_url=body.callback_url,
            api_key_name=who.name,
            runtime=intake(request).runtime,
        )
        return accepted(job_id, response)

    @app.post(
        "/v1/notifications:batch",
        status_code=202,
        response_model=BatchAccepted,
        responses={429: {**PROBLEM, "description": "Over the key's batch messages a minute"}},
    )
    def post_batch(
        body: BatchIn, request: Request, who: Annotated[Caller, Depends(caller)]
    ) -> BatchAccepted:
        """Queue many personalised messages of one profile (a fan-out) in one request.

        All are checked before any is built or stored; a bad one is a 422
        naming it (``messages[3].to``) and nothing is queued.
        """
        sending_profile(intake(request), who, body.profile)
        limit = intake(request).runtime.settings.api_max_batch_messages
        if len(body.messages) > limit:
            raise problems.Problem(
                422, "Batch too large",
                f"{len(body.messages)} messages, at most {limit} in one batch "
                "(MAILPIPE_API_MAX_BATCH_MESSAGES): send several batches",
                field="messages",
            )  # fmt: skip
        check_batch_rate(intake(request).runtime, who, len(body.messages))
        ids = notify_many(
            body.profile,
            [
                m.fields() | {"idempotency_key": m.idempotency_key, "callback_url": m.callback_url}
                for m in body.messages
            ],
            body.priority,
            callback_url=body.callback_url,
            api_key_name=who.name,
            runtime=intake(request).runtime,
        )
        return BatchAccepted(notifications=[status_of(job_id) for job_id in ids])

    @app.get("/v1/notifications/{job_id}")
    def get_notification(
        job_id: str, request: Request, who: Annotated[Caller, Depends(caller)]
    ) -> dict[str, Any]:
        """The job, every attempt, each recipient's result and the job's events (as
        `mailpipe status --json`)."""
        job = intake(request).runtime.store.get_job(job_id)
        if job is None or not who.may_see(job.api_key_name):
            raise problems.Problem(404, "Not found", f"no notification {job_id}", field="id")
        return job_dict(job, intake(request).runtime.store.events_of(job.id))

    @app.get("/healthz", response_model=Health, responses={})
    def healthz() -> Health:
        """Liveness: the process answers. Needs no key."""
        return Health(status="ok")

    @app.get("/readyz", response_model=Health, responses={503: ERRORS[503]})
    def readyz(request: Request) -> Health:
        """Readiness: the database, Redis and the broker answer. Needs no key."""
        failing = readiness(intake(request).runtime)
        if failing:
            raise problems.Problem(503, "Not ready", "; ".join(failing))
        return Health(status="ok")

    @app.get("/metrics", response_class=PlainTextResponse)
    def metrics(request: Request, who: Annotated[Caller, Depends(caller)]) -> Response:
        """Prometheus text format: jobs, attempts, tokens, latencies, queue depth."""
        body, content_type = exposition(intake(request).runtime)
        return Response(body, media_type=content_type)

    return app
