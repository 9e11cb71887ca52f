"""``notify(...)``: what incident systems call to send a notification.

The job is validated, written to the database, and only then published as a
task message carrying its id (never the message, never a secret). If the
broker is down the job is not lost: ``requeue_stale_jobs`` publishes it later.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Literal

from worker.celery import SEND_TASK, queue_of
from worker.intake.arguments import check_notification_arguments, check_sizes
from worker.intake.message import (
    DEFAULT_MAX_MESSAGE_BYTES,
    Attachment,
    Notification,
    build_message,
)
from worker.metrics import Samples
from worker.runtime import Producer, get_producer
from worker.store import Job, StoreUnavailableError

log = logging.getLogger(__name__)

Priority = Literal["normal", "high"]


def notify(
    profile: str,
    to: Iterable[str],
    subject: str,
    text: str,
    html: str | None = None,
    cc: Iterable[str] = (),
    bcc: Iterable[str] = (),
    reply_to: str | None = None,
    headers: Mapping[str, str] | None = None,
    attachments: Iterable[Attachment] = (),
    idempotency_key: str | None = None,
    priority: Priority = "normal",
    *,
    runtime: Producer | None = None,
) -> str:
    """Queue a notification; returns the job id (the first job's id for a repeated key).

    Raises UnknownProfileError or InvalidMessageError, with nothing stored,
    when the input cannot be sent: argument types first, then the profile,
    then the sizes, then the message itself.
    """
    notification = check_notification_arguments(
        profile, to, subject, text, html, cc, bcc, reply_to, headers, attachments,
        idempotency_key, priority,
    )  # fmt: skip
    rt = runtime or get_producer()
    sender = rt.profiles.get(profile)
    max_bytes = sender.max_message_bytes or DEFAULT_MAX_MESSAGE_BYTES
    check_sizes(notification, max_bytes)  # before the message is built
    job = Job(
        profile=profile,
        status="queued",
        priority=priority,
        idempotency_key=idempotency_key,
        notification=_as_record(notification),
        attempt_count=0,
    )
    job.id = _new_id()
    message = build_message(
        notification,
        job_id=job.id,
        from_email=sender.from_email,
        from_name=sender.from_name,
        max_recipients=sender.max_recipients,
        max_bytes=max_bytes,
    )
    job.sender, job.recipients = message.sender, list(message.recipients)
    job.message, job.message_id, job.smtputf8 = message.data, message.message_id, message.smtputf8
    window = timedelta(seconds=rt.settings.idempotency_window_seconds)
    job_id, created = rt.store.add_job(job, idempotency_window=window)
    if created:
        rt.metrics.record(Samples().count("jobs_enqueued", {"profile": profile}))
        publish(rt, job_id, priority, record=False)  # add_job set published_at
    else:
        log.info(
            "idempotency key %r: job %s already exists, nothing new sent", idempotency_key, job_id
        )
    return job_id


def publish(
    rt: Producer, job_id: str, priority: str, countdown: float = 0.0, *, record: bool = True
) -> bool:
    """Put a task message for the job on the broker; False (job kept) if the broker is down.

    ``record`` notes the publish time, which keeps the sweeper from sending
    the job again while this message is in flight.
    """
    queue = queue_of(priority)
    try:
        rt.celery.send_task(
            SEND_TASK,
            args=[job_id],
            argsrepr=repr((job_id,)),
            queue=queue,
            countdown=countdown or None,
        )
    except Exception as exc:  # kombu raises many types; the job is safe in the store
        log.warning("job %s stored but not published (%s); it will be requeued", job_id, exc)
        # So the next sweep publishes it; if this fails too, the lost-message check will.
        with contextlib.suppress(StoreUnavailableError):
            rt.store.mark_unpublished([job_id])
        return False
    if record:
        rt.store.mark_published([job_id], at=datetime.now(UTC) + timedelta(seconds=countdown))
    return True


def _as_record(notification: Notification) -> dict[str, object]:
    """The notification as submitted, for the record; attachment bytes stay in the message."""
    return {
        "to": list(notification.to),
        "cc": list(notification.cc),
        "bcc": list(notification.bcc),
        "reply_to": notification.reply_to,
        "subject": notification.subject,
        "text": notification.text,
        "html": notification.html,
        "headers": dict(notification.headers),
        "attachments": [
            {"filename": a.filename, "content_type": a.content_type, "bytes": len(a.data)}
            for a in notification.attachments
        ],
    }


def _new_id() -> str:
    return uuid.uuid4().hex
