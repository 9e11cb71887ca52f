"""``notify(...)``: what incident systems call to send a notification.

The job is validated, written to the database, and only then published as a
task message carrying its id (never the message, never a secret). If the
broker is down the job is not lost: ``requeue_stale_jobs`` publishes it later.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import timedelta
from typing import Any, Literal

from worker.intake.arguments import (
    check_callback_url,
    check_notification_arguments,
    check_sizes,
)
from worker.intake.message import (
    DEFAULT_MAX_MESSAGE_BYTES,
    Attachment,
    InvalidMessageError,
    Notification,
    build_message,
    check_notification,
)
from worker.metrics import Samples
from worker.queue import Producer, get_producer, publish, publish_batch
from worker.store.tables import Job

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
    callback_url: str | None = None,
    api_key_name: str | None = None,
    runtime: Producer | None = None,
) -> str:
    """Queue a notification; returns the job id (the first job's id for a repeated key).

    Raises UnknownProfileError or InvalidMessageError, with nothing stored,
    when the input cannot be sent: argument types first, then the profile,
    then the sizes, then the message itself. ``api_key_name``: the HTTP
    intake's key that asks (recorded on the job; its idempotency keys are its own).
    ``callback_url``: where the job's events are POSTed, signed with
    ``MAILPIPE_CALLBACK_SECRET`` (refused while that is unset).
    """
    notification = check_notification_arguments(
        profile, to, subject, text, html, cc, bcc, reply_to, headers, attachments,
        idempotency_key, priority,
    )  # fmt: skip
    rt = runtime or get_producer()
    url = _callback_url(rt, callback_url)
    job = _prepared_job(rt, profile, notification, idempotency_key, priority, api_key_name)
    job.callback_url = url
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


def notify_many(
    profile: str,
    messages: Sequence[Mapping[str, Any]],
    priority: Priority = "normal",
    *,
    callback_url: str | None = None,
    api_key_name: str | None = None,
    runtime: Producer | None = None,
) -> list[str]:
    """Queue many personalised notifications of one profile; their job ids, in order.

    Each message takes ``notify``'s fields (to, subject, text, html, cc, bcc,
    reply_to, headers, attachments, idempotency_key, callback_url); a batch's
    ``callback_url`` is every message's that names none. All are checked before
    any is stored: a bad one raises InvalidMessageError naming its index, and
    nothing is queued. Every message is checked before any is built, so a
    bad last one costs no building. They are stored in one transaction and
    published as batch tasks of up to ``batch_size`` job ids each; every job
    keeps its own claim, limits, attempts and retries.
    """
    rt = runtime or get_producer()
    if not isinstance(messages, Sequence) or isinstance(messages, str | bytes) or not messages:
        raise InvalidMessageError("messages", "give a non-empty list of messages")
    batch_url = _callback_url(rt, callback_url)
    checked: list[tuple[Notification, str | None, str | None]] = []
    for index, fields in enumerate(messages):
        with _naming(index):
            checked.append(_checked_fields(rt, fields, profile, priority, batch_url))
    keys = [key for _, key, _ in checked if key is not None]
    if len(keys) != len(set(keys)):
        raise InvalidMessageError("messages", "an idempotency_key appears twice")
    jobs = []
    for index, (notification, key, url) in enumerate(checked):
        with _naming(index):
            job = _prepared_job(rt, profile, notification, key, priority, api_key_name)
        job.callback_url = url
        jobs.append(job)
    window = timedelta(seconds=rt.settings.idempotency_window_seconds)
    added = rt.store.add_jobs(jobs, idempotency_window=window)
    new = [job_id for job_id, created in added if created]
    if new:
        rt.metrics.record(Samples().count("jobs_enqueued", {"profile": profile}, len(new)))
    size = rt.settings.batch_size
    for start in range(0, len(new), size):
        publish_batch(rt, new[start : start + size], priority)
    return [job_id for job_id, _ in added]


def _checked_fields(
    rt: Producer, fields: object, profile: str, priority: Priority, batch_url: str | None
) -> tuple[Notification, str | None, str | None]:
    """One batch message's fields as a Notification, its idempotency key and its callback
    URL (its own, else the batch's), all checked."""
    if not isinstance(fields, Mapping):
        raise InvalidMessageError("", "must be a table of notify()'s fields")
    values = dict(fields)
    key = values.pop("idempotency_key", None)
    own_url = values.pop("callback_url", None)
    url = batch_url if own_url is None else _callback_url(rt, own_url)
    notification = check_notification_arguments(
        profile, values.pop("to", None), values.pop("subject", None),
        values.pop("text", None), values.pop("html", None), values.pop("cc", ()),
        values.pop("bcc", ()), values.pop("reply_to", None), values.pop("headers", None),
        values.pop("attachments", ()), key, priority,
    )  # fmt: skip
    if values:
        raise InvalidMessageError(sorted(values)[0], "unknown field")
    sender = rt.profiles.get(profile)
    check_sizes(notification, sender.max_message_bytes or DEFAULT_MAX_MESSAGE_BYTES)
    check_notification(notification, max_recipients=sender.max_recipients)
    return notification, key, url


def _callback_url(rt: Producer, value: object) -> str | None:
    """A checked ``callback_url`` (allowed by MAILPIPE_CALLBACK_ALLOWED; signed, so refused
    while MAILPIPE_CALLBACK_SECRET is unset), or None."""
    if value is None:
        return None
    url = check_callback_url(value, rt.settings.callback_policy())
    if url is not None and rt.settings.callback_secret is None:
        raise InvalidMessageError(
            "callback_url",
            "MAILPIPE_CALLBACK_SECRET is not set: callbacks are signed with it, set it first",
        )
    return url


@contextlib.contextmanager
def _naming(index: int) -> Iterator[None]:
    """An InvalidMessageError about one batch message, as one naming it (``messages[3].to``)."""
    try:
        yield
    except InvalidMessageError as exc:
        problem = exc.message.removeprefix(f"{exc.field}: ")
        where = f"messages[{index}]" + (f".{exc.field}" if exc.field else "")
        raise InvalidMessageError(where, problem) from None


def _prepared_job(
    rt: Producer,
    profile: str,
    notification: Notification,
    idempotency_key: str | None,
    priority: Priority,
    api_key_name: str | None = None,
) -> Job:
    """The job for a checked notification, its message built once (the sizes first)."""
    sender = rt.profiles.get(profile)
    max_bytes = sender.max_message_bytes or DEFAULT_MAX_MESSAGE_BYTES
    check_sizes(notification, max_bytes)  # before the message is built
    job = Job(
        profile=profile,
        status="queued",
        priority=priority,
        idempotency_key=idempotency_key,
        api_key_name=api_key_name,
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
    return job


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
