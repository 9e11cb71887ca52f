"""How jobs and attempts are shown by the CLI: lines for people, dicts for --json."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from worker.store import Attempt, Event, Job

_SINCE = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_since(text: str) -> timedelta:
    """ "90s", "15m", "1h", "7d" → timedelta; ValueError otherwise."""
    match = _SINCE.match(text.strip())
    if not match:
        raise ValueError(f"'{text}' is not a duration like 30m, 1h or 7d")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%SZ") if value else "-"


def job_dict(job: Job, events: Sequence[Event] = ()) -> dict[str, Any]:
    return {
        "id": job.id,
        "profile": job.profile,
        "status": job.status,
        "priority": job.priority,
        "idempotency_key": job.idempotency_key,
        "message_id": job.message_id,
        "subject": job.notification.get("subject"),
        "to": job.notification.get("to"),
        "cc": job.notification.get("cc"),
        "bcc_count": len(job.notification.get("bcc") or []),
        "created_at": when(job.created_at),
        "next_attempt_at": when(job.next_attempt_at) if job.next_attempt_at else None,
        "finished_at": when(job.finished_at) if job.finished_at else None,
        "outcome": job.outcome,
        "outcome_text": job.outcome_text,
        "delivered_by": delivered_by(job),
        "recipients": recipient_states(job),
        "attempts": [attempt_dict(a) for a in job.attempts],
        "callback_url": job.callback_url,
        "events": [event_dict(e) for e in events],
    }


def event_dict(event: Event) -> dict[str, Any]:
    """An event as its callback's body has it, with where its callback stands."""
    callback = getattr(event, "callback", None)  # Store.events_of attaches it
    return {
        "event": event.event,
        "recipient": event.recipient,
        "at": when(event.at),
        "profile": event.profile,
        "smtp_code": event.smtp_code,
        "enhanced_code": event.enhanced_code,
        "text": event.text,
        "callback": None if callback is None else {
            "status": callback.status,
            "attempts": [
                {"at": when(a.at), "http_status": a.http_status, "error": a.error}
                for a in callback.attempts
            ],
            "next_attempt_at": when(callback.next_attempt_at)
            if callback.status == "pending" else None,
        },
    }  # fmt: skip


def event_lines(event: Event) -> list[str]:
    # The text already starts with the enhanced code, as an attempt's does; a bounce's
    # diagnostic starts with the SMTP code too.
    code = str(event.smtp_code or "")
    said = event.text if event.text.startswith(code) else f"{code} {event.text}".strip()
    lines = [f"  event {event.event:<9} {when(event.at)}  {event.recipient or '-'}  {said}"]
    callback = getattr(event, "callback", None)
    if callback is not None:
        posts = ", ".join(
            str(a.http_status) if a.http_status is not None else (a.error or "no answer")
            for a in callback.attempts
        )
        lines.append(f"      callback {callback.status}" + (f" after {posts}" if posts else ""))
    return lines


def delivered_by(job: Job) -> str | None:
    """The profile whose attempt delivered the message (a fallback's, after a fallback)."""
    # An attempt's recipients may be accepted at RCPT and the message then refused at
    # DATA: only a delivered attempt (all or some recipients have it) counts.
    accepted = [a.profile for a in job.attempts if a.outcome == "delivered"]
    return accepted[-1] if accepted else None


def recipient_states(job: Job) -> list[dict[str, Any]]:
    """Each recipient's state now: accepted, refused, waiting for a retry, or not tried yet.

    The latest attempt that named a recipient decides; a recipient refused for
    now whose job is over counts as refused.
    """
    last: dict[str, Any] = {}
    for attempt in job.attempts:
        for r in attempt.recipients:
            last[r.address] = (attempt.number, r)
    final = job.status in ("delivered", "failed")
    states = []
    for address in job.recipients:
        if address not in last:
            states.append({"address": address, "state": "failed" if final else "not tried"})
            continue
        number, r = last[address]
        if r.accepted:
            state = "accepted"
        elif r.outcome == "transient" and not final:
            state = "retrying"
        else:
            state = "refused"
        states.append(
            {"address": address, "state": state, "attempt": number, "smtp_code": r.smtp_code,
             "text": r.text}
        )  # fmt: skip
    return states


def attempt_dict(attempt: Attempt) -> dict[str, Any]:
    return {
        "job_id": attempt.job_id,
        "number": attempt.number,
        "profile": attempt.profile,
        "started_at": when(attempt.started_at),
        "duration_seconds": round(attempt.duration_seconds, 4),
        "worker": attempt.worker,
        "outcome": attempt.outcome,
        "phase": attempt.phase,
        "smtp_code": attempt.smtp_code,
        "enhanced_code": attempt.enhanced_code,
        "text": attempt.text,
        "hint": attempt.hint,
        "queue_id": attempt.queue_id,
        "token_source": attempt.token_source,
        "token_seconds": attempt.token_seconds,
        "reused_connection": attempt.reused_connection,
        "recipients": [
            {
                "address": r.address,
                "accepted": r.accepted,
                "smtp_code": r.smtp_code,
                "enhanced_code": r.enhanced_code,
                "text": r.text,
                "outcome": r.outcome,
            }
            for r in attempt.recipients
        ],
    }


def job_lines(job: Job, events: Sequence[Event] = ()) -> list[str]:
    n = job.notification
    lines = [
        f"job {job.id}: {job.status} (profile {job.profile}, priority {job.priority})",
        f"  subject     {n.get('subject')}",
        f"  to          {', '.join(n.get('to') or []) or '-'}"
        + (f"   cc {', '.join(n['cc'])}" if n.get("cc") else "")
        + (f"   bcc {len(n['bcc'])}" if n.get("bcc") else ""),
        f"  message-id  {job.message_id}",
        f"  created     {when(job.created_at)}",
    ]
    if job.finished_at:
        lines.append(f"  finished    {when(job.finished_at)} after {job.attempt_count} attempt(s)")
    by = delivered_by(job)
    if by:
        fallback = " (a fallback)" if by != job.profile else ""
        lines.append(f"  delivered   by profile {by}{fallback}")
    if len(job.recipients) > 1 and job.attempts:
        lines.append("  recipients  " + ", ".join(
            f"{r['address']} {r['state']}" for r in recipient_states(job)
        ))  # fmt: skip
    elif job.next_attempt_at:
        lines.append(f"  next try    {when(job.next_attempt_at)}")
    lines += [line for attempt in job.attempts for line in attempt_lines(attempt)]
    lines += [line for event in events for line in event_lines(event)]
    return lines


def attempt_lines(attempt: Attempt) -> list[str]:
    # The server's text already starts with the enhanced code.
    code = attempt.smtp_code or ""
    how = [f"{attempt.duration_seconds:.2f}s"]
    if attempt.token_source:
        how.append(f"token {attempt.token_source} {attempt.token_seconds or 0:.3f}s")
    how.append("reused connection" if attempt.reused_connection else "new connection")
    lines = [
        f"  attempt {attempt.number}  {when(attempt.started_at)}  {attempt.profile}  "
        f"{attempt.outcome} at "
        f"{attempt.phase}: {code} {attempt.text}".rstrip()
        + f"  ({', '.join(how)})"
    ]
    if attempt.hint:
        lines.append(f"      hint: {attempt.hint}")
    for r in attempt.recipients:
        state = "accepted" if r.accepted else f"refused ({r.outcome})"
        lines.append(f"      {r.address}  {state} {r.smtp_code or ''} {r.text}".rstrip())
    return lines


def attempt_row(attempt: Attempt) -> str:
    code = attempt.smtp_code or "-"
    return (
        f"{when(attempt.started_at)}  {attempt.job_id}  #{attempt.number}  {attempt.profile:<16} "
        f"{attempt.outcome:<13} {attempt.phase:<7} {code!s:<4} {attempt.text[:80]}"
    )
