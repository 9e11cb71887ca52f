"""``/v1/notifications``: queue one notification or a batch, and read one back by its id.

Endpoints are plain functions run in FastAPI's thread pool, because
``notify`` does blocking I/O; a ``202`` is answered only after the job is stored.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request, Response

from worker.faces.http import problems
from worker.faces.http.batch_rate import check_batch_rate
from worker.faces.http.deps import (
    PROBLEM,
    accepted,
    caller,
    intake,
    sending_profile,
    status_of,
)
from worker.faces.http.keys import Caller
from worker.faces.http.schemas import Accepted, BatchAccepted, BatchIn, NotificationIn
from worker.faces.reports import job_dict
from worker.intake import notify, notify_many

router = APIRouter()


@router.post("/v1/notifications", status_code=202, response_model=Accepted)
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


@router.post(
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


@router.get("/v1/notifications/{job_id}")
def get_notification(
    job_id: str, request: Request, who: Annotated[Caller, Depends(caller)]
) -> dict[str, Any]:
    """The job, every attempt, each recipient's result and the job's events (as
    `mailpipe status --json`)."""
    job = intake(request).runtime.store.get_job(job_id)
    if job is None or not who.may_see(job.api_key_name):
        raise problems.Problem(404, "Not found", f"no notification {job_id}", field="id")
    return job_dict(job, intake(request).runtime.store.events_of(job.id))
