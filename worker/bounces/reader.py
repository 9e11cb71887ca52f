"""Read one profile's bounce mailbox: new messages since the last UID, reports to events.

Run by beat (``tasks.bounces``) under a Redis lock per mailbox, so one worker
reads it at a time; an event's ``source`` (mailbox, UIDVALIDITY, UID,
recipient) is unique in the store, so a report read twice (a lock that
expired mid-read, a cursor written late) still makes one event.

Each report is matched to its job by ENVID or by the returned Message-ID;
each failed recipient gets a ``bounced`` event, each delayed one ``delayed``;
a job whose every recipient bounced becomes ``bounced``. A report for no
known job, and any message that is no report, is counted and left alone.
Nothing here logs a message's content.
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from worker.bounces.imap import BounceMailboxError, Mailbox
from worker.bounces.reports import Report, parse_report
from worker.credentials import Credentials, Profile
from worker.metrics import Metrics, Samples
from worker.store import EventEntry, Job, Store, utcnow

log = logging.getLogger(__name__)

# Messages handled per run: a full mailbox is read over several polls.
MAX_MESSAGES_PER_RUN = 200


class BounceContext(Protocol):
    @property
    def store(self) -> Store: ...
    @property
    def credentials(self) -> Credentials: ...
    @property
    def metrics(self) -> Metrics: ...


@dataclass
class ReadResult:
    """What one run of the reader did."""

    messages: int = 0
    events: list[EventEntry] = field(default_factory=list)
    unmatched: int = 0
    bounced_jobs: list[str] = field(default_factory=list)

    @property
    def callbacks(self) -> list[str]:
        return [c for c in (e.callback for e in self.events) if c]


def mailbox_key(profile: Profile) -> str:
    """The cursor's key: the same mailbox and folder read through two profiles is one."""
    box = profile.bounces
    assert box is not None
    return f"{box.username}@{box.host}:{box.port}/{box.folder}".lower()


def read_bounces(
    rt: BounceContext, profile: Profile, *, timeout_seconds: float = 30.0
) -> ReadResult:
    """Read the new messages of ``profile``'s bounce mailbox and record what they report."""
    box = profile.bounces
    assert box is not None, f"profile {profile.name} reads no bounce mailbox"
    key = mailbox_key(profile)
    context = ssl.create_default_context(cafile=str(profile.ca_file) if profile.ca_file else None)
    result = ReadResult()
    with Mailbox(box.host, box.port, context, timeout_seconds=timeout_seconds) as mailbox:
        mailbox.log_in(rt.credentials.mailbox(profile.name))
        uidvalidity = mailbox.select(box.folder)
        cursor = rt.store.cursor(key)
        # A new UIDVALIDITY means the old UIDs mean nothing: read the folder again
        # (events already written are not written twice).
        last = cursor[1] if cursor and cursor[0] == uidvalidity else 0
        for uid in mailbox.uids_after(last)[:MAX_MESSAGES_PER_RUN]:
            data = mailbox.fetch(uid)
            report = parse_report(data) if data is not None else None
            handled = report is not None and _record(
                rt, profile, report, f"{key}#{uidvalidity}:{uid}", result
            )
            if report is not None and not handled:
                result.unmatched += 1
            result.messages += 1
            if handled and box.move_to:
                _move(mailbox, uid, box.move_to, profile.name)
            rt.store.advance_cursor(key, uidvalidity, uid)
    samples = Samples()
    bounced = sum(1 for e in result.events if e.event == "bounced")
    if bounced:
        samples.count("bounces", {"profile": profile.name}, bounced)
    if result.unmatched:
        samples.count("bounce_reports_unmatched", {"profile": profile.name}, result.unmatched)
    rt.metrics.record(samples)
    if result.messages:
        log.info(
            "bounce mailbox of %s: %d message(s), %d event(s), %d report(s) for no known job",
            profile.name, result.messages, len(result.events), result.unmatched,
        )  # fmt: skip
    return result


def _move(mailbox: Mailbox, uid: int, folder: str, profile: str) -> None:
    """Move a handled report; one already moved (by a reader whose lock ran out) is fine."""
    try:
        mailbox.move(uid, folder)
    except BounceMailboxError as exc:
        log.warning("bounce mailbox of %s: %s; left where it is", profile, exc)


def _record(
    rt: BounceContext, profile: Profile, report: Report, source: str, result: ReadResult
) -> bool:
    """The report's events for its job; False when it names no known job."""
    job = rt.store.job_for_report(report.envelope_id, report.message_id)
    if job is None:
        return False
    at = utcnow()
    entries = [_event(job, r.event, r.recipient, r.smtp_code, r.status, r.diagnostic, at,
                      f"{source}:{r.recipient}") for r in report.recipients]  # fmt: skip
    written = rt.store.add_events(entries)
    result.events += written
    if any(e.event == "bounced" for e in written) and rt.store.mark_bounced(job.id):
        result.bounced_jobs.append(job.id)
    return True


def _event(
    job: Job,
    kind: str,
    recipient: str,
    smtp_code: int | None,
    status: str,
    diagnostic: str,
    at: datetime,
    source: str,
) -> EventEntry:
    return EventEntry(
        job_id=job.id,
        event=kind,
        profile=job.via_profile or job.profile,
        recipient=recipient,
        at=at,
        smtp_code=smtp_code,
        enhanced_code=status,
        text=diagnostic,
        source=source,
        callback_url=job.callback_url,
    )
