"""How the console shows jobs, attempts and times: plain values for the templates."""

from __future__ import annotations

from datetime import UTC, datetime
from email.parser import BytesHeaderParser
from email.policy import default
from typing import Any

from worker.store import Job, state_of

# Each state's word and the colour class beside it (the word carries the meaning).
STATE_LABELS = {
    "queued": "queued",
    "retrying": "retrying",
    "sending": "sending",
    "delivered": "delivered",
    "failed": "failed",
    "cancelled": "cancelled",
    "bounced": "bounced",
}
SINCE_CHOICES = (("15m", "15 minutes"), ("1h", "1 hour"), ("24h", "24 hours"), ("7d", "7 days"))
PRIORITIES = ("high", "normal")
# Headers a page shows first; the rest follow in the message's order.
_FIRST = ("From", "To", "Cc", "Reply-To", "Subject", "Date", "Message-ID")


def utc(value: datetime | None) -> dict[str, str] | None:
    """A time for a <time> element: UTC text, and ISO for the local time on hover."""
    if value is None:
        return None
    value = value.astimezone(UTC)
    return {"text": value.strftime("%Y-%m-%d %H:%M:%SZ"), "iso": value.isoformat()}


def job_row(job: Job) -> dict[str, Any]:
    to = job.notification.get("to") or job.recipients
    return {
        "id": job.id,
        "state": state_of(job),
        "profile": job.profile,
        "priority": job.priority,
        "subject": job.notification.get("subject") or "",
        "to": to[0] if to else "",
        "more": max(len(job.recipients) - 1, 0),
        "attempts": job.attempt_count,
        "created": utc(job.created_at),
    }


def recipient_rows(job: Job, states: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each recipient's result, as a badge state: an address the server took at RCPT counts
    as delivered only once the job is (a message refused at DATA reached nobody)."""
    badges = {"accepted": "delivered", "refused": "failed", "retrying": "retrying"}
    rows = []
    for r in states:
        badge = badges.get(r["state"], "queued")
        word = r["state"]
        if r["state"] == "accepted" and job.status != "delivered":
            badge, word = state_of(job), "accepted at RCPT, message not delivered"
        rows.append(r | {"badge": badge, "word": word})
    return rows


def message_headers(job: Job) -> list[tuple[str, str]]:
    """The stored message's headers (its body is not parsed), the usual ones first."""
    message = BytesHeaderParser(policy=default).parsebytes(job.message)
    items = [(name, str(value)) for name, value in message.items()]
    first = [item for name in _FIRST for item in items if item[0].lower() == name.lower()]
    return first + [item for item in items if item not in first]


def status_word(status: dict[str, Any]) -> tuple[str, str]:
    """A profile's health as (word, colour class)."""
    if status["auth"] == "password":
        return "no token (password)", "neutral"
    return {
        True: ("healthy", "delivered"),
        False: ("unhealthy", "failed"),
        None: ("unknown", "queued"),
    }[status["healthy"]]
