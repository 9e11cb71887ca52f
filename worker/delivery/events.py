"""The events an attempt settles: ``delivered`` and ``failed``, one per recipient.

``decide`` calls ``settled`` for every attempt it judges; this is the one place
that says which recipients an attempt settled and how. The events are written
with the attempt (one transaction) and each one of a job with a
``callback_url`` gets a callback the task layer publishes after the write.

- a recipient the server accepted, in an attempt whose message it accepted → ``delivered``;
- a recipient refused for good → ``failed`` at once (the rest may still be delivered);
- when the job ends (failed, or out of attempts) → ``failed`` for every recipient of the
  attempt not settled otherwise, with the recipient's reply or the attempt's.

A recipient refused for now in an attempt that is not the last gets nothing yet.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from worker.store import EventEntry, Job, NextStep
from worker.transport import Outcome, RecipientResult


def settled(
    job: Job,
    recipients: Sequence[str],
    result: Outcome,
    step: NextStep,
    at: datetime,
    profile: str,
) -> tuple[EventEntry, ...]:
    """The events of one attempt to ``recipients`` (its envelope) through ``profile``."""
    final = step.status in ("delivered", "failed")
    replies = {r.address: r for r in result.recipients}
    events = []
    for address in recipients:
        reply = replies.get(address)
        if result.kind == "delivered" and (reply is None or reply.accepted):
            events.append(_event(job, "delivered", address, result, None, at, profile))
        elif (reply is not None and not reply.accepted and reply.kind == "permanent") or final:
            events.append(_event(job, "failed", address, result, reply, at, profile))
    return tuple(events)


def _event(
    job: Job,
    kind: str,
    address: str,
    result: Outcome,
    reply: RecipientResult | None,
    at: datetime,
    profile: str,
) -> EventEntry:
    # A recipient's own refusal says more than the message's reply (e.g. 550 at RCPT).
    said = reply if reply is not None and not reply.accepted else result
    return EventEntry(
        job_id=job.id,
        event=kind,
        profile=profile,
        recipient=address,
        at=at,
        smtp_code=said.code,
        enhanced_code=said.enhanced_code,
        text=said.text,
        callback_url=job.callback_url,
    )
