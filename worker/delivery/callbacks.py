"""Callbacks: a job's events POSTed, signed, to its ``callback_url`` until the receiver takes one.

The body is the event as JSON, ``{event, job_id, profile, recipient, at,
smtp_code, enhanced_code, text}``; ``X-Mailpipe-Signature: t=<unix>,v1=<hex>``
carries an HMAC-SHA256 of ``"<t>.<body>"`` keyed by ``MAILPIPE_CALLBACK_SECRET``
(the shape Stripe and Svix use: the receiver checks it with a constant-time
compare and refuses an old ``t``, so a replayed body is worth nothing).

Any 2xx takes the event; 410 Gone says the receiver wants no more (that
callback stops); anything else, or no answer, is tried again with full-jitter
backoff until ``callback_max_age_seconds`` (24 h) after the event. Each POST is
recorded. A callback never holds up a delivery: it is its own task, after the
attempt that made the event is written.

A target ``MAILPIPE_CALLBACK_ALLOWED`` does not allow (``worker.callback_targets``:
checked at intake, and again here, on the URL and on every address its host
resolves to, by ``CallbackTransport``) is not POSTed to: the callback is
recorded ``refused`` with the reason, and not tried again.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, Protocol

import httpx

from providers.backoff import full_jitter
from worker.delivery.callback_transport import CallbackRefusedError
from worker.metrics import Metrics, Samples
from worker.settings import Settings
from worker.store import CallbackWork, Event, Store, utcnow

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Mailpipe-Signature"


class CallbackContext(Protocol):
    """What posting a callback needs; a worker's ``Runtime`` is one."""

    @property
    def settings(self) -> Settings: ...
    @property
    def store(self) -> Store: ...
    @property
    def metrics(self) -> Metrics: ...


@dataclass(frozen=True)
class CallbackDecision:
    """What the task does next: nothing, or try again after ``countdown_seconds``."""

    action: Literal["done", "skip", "retry", "wait"]
    countdown_seconds: float = 0.0


def body(event: Event) -> bytes:
    """The event as the receiver gets it: compact JSON, UTF-8."""
    fields = {
        "event": event.event,
        "job_id": event.job_id,
        "profile": event.profile,
        "recipient": event.recipient,
        "at": event.at.isoformat().replace("+00:00", "Z"),
        "smtp_code": event.smtp_code,
        "enhanced_code": event.enhanced_code,
        "text": event.text,
    }
    return json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode()


def signature(secret: bytes, timestamp: int, content: bytes) -> str:
    """The ``X-Mailpipe-Signature`` value: ``t=<unix>,v1=<hex HMAC-SHA256 of "t.body">``."""
    mac = hmac.new(secret, f"{timestamp}.".encode() + content, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def post_callback(
    rt: CallbackContext,
    callback_id: str,
    client: httpx.Client,
    *,
    now: Callable[[], datetime] = utcnow,
    clock: Callable[[], float] = time.time,
) -> CallbackDecision:
    """POST one callback if it is due and no one else holds it; record the POST and count
    its outcome (``mailpipe_callbacks_total{outcome}``)."""
    settings = rt.settings
    lease = timedelta(seconds=2 * settings.callback_timeout_seconds + 30)
    work = rt.store.claim_callback(callback_id, lease)
    if work is None:
        return CallbackDecision("skip")
    started = time.monotonic()
    try:
        status, error = _post(settings, work, client, clock)
    except CallbackRefusedError as exc:
        status, error, refused = None, f"refused: {exc}", True
    else:
        refused = False
    post = _Post(callback_id, work.attempt_count + 1, now(), time.monotonic() - started, status)
    decision, outcome = _settle(rt, work, post, error, refused)
    rt.metrics.record(Samples().count("callbacks", {"outcome": outcome}))
    return decision


@dataclass(frozen=True)
class _Post:
    callback_id: str
    number: int
    at: datetime
    duration_seconds: float
    http_status: int | None


def _settle(
    rt: CallbackContext, work: CallbackWork, post: _Post, error: str | None, refused: bool
) -> tuple[CallbackDecision, str]:
    """Record the POST and where the callback stands; what the task does next, and the
    outcome counted: delivered, gone, refused, retrying or gave_up."""
    settings, callback_id, status = rt.settings, post.callback_id, post.http_status

    def record(state: str, why: str | None, next_at: datetime | None = None) -> None:
        rt.store.record_callback_post(
            callback_id, number=post.number, at=post.at, duration_seconds=post.duration_seconds,
            http_status=status, error=why, status=state, next_attempt_at=next_at,
        )  # fmt: skip

    if refused:
        record("refused", error)
        log.warning("callback %s %s", callback_id, error)
        return CallbackDecision("done"), "refused"
    if status is not None and (200 <= status < 300 or status == 410):
        state = "delivered" if status != 410 else "gone"
        record(state, None)
        if state == "gone":
            log.info("callback %s: the receiver answered 410 Gone; not sent again", callback_id)
        return CallbackDecision("done"), state
    delay = full_jitter(
        post.number,
        base_seconds=settings.callback_retry_base_seconds,
        max_seconds=settings.callback_retry_max_seconds,
    )
    next_at = post.at + timedelta(seconds=delay)
    why = error or f"HTTP {status}"
    if next_at > work.created_at + timedelta(seconds=settings.callback_max_age_seconds):
        record("expired", why)
        log.warning("callback %s: %s; given up after %d POSTs", callback_id, why, post.number)
        return CallbackDecision("done"), "gave_up"
    record("pending", why, next_at)
    log.info("callback %s: %s; again in %.0fs", callback_id, why, delay)
    if delay <= settings.broker_max_countdown_seconds:
        return CallbackDecision("retry", delay), "retrying"
    return CallbackDecision("wait", delay), "retrying"  # the sweep publishes it when due


def _post(
    settings: Settings, work: CallbackWork, client: httpx.Client, clock: Callable[[], float]
) -> tuple[int | None, str | None]:
    """The receiver's HTTP status, or None and why there was none; CallbackRefusedError when
    its target is not allowed."""
    if settings.callback_secret is None:
        return None, "MAILPIPE_CALLBACK_SECRET is not set: nothing unsigned is sent"
    content = body(work.event)
    secret = settings.callback_secret.get_secret_value().encode()
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: signature(secret, int(clock()), content),
        "User-Agent": "mailpipe-callbacks",
    }
    try:
        response = client.post(
            work.url, content=content, headers=headers, timeout=settings.callback_timeout_seconds
        )
    except httpx.HTTPError as exc:  # the URL's host is the receiver's: naming the error is safe
        return None, f"{type(exc).__name__}: no answer from the receiver"
    return response.status_code, None
