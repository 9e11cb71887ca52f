"""Read one profile's bounce mailbox: new messages since the cursor, reports to events.

Run by beat (``tasks.bounces``) under a Redis lock per mailbox, so one worker
reads it at a time; an event's ``source`` (mailbox, the message's place in
it, recipient) is unique in the store, so a report read twice (a lock that
expired mid-read, a cursor written late) still makes one event.

A mailbox is IMAP (``imap.py``: UIDVALIDITY and the last UID are the cursor)
or, for a ``transport = "graph"`` profile, Microsoft Graph (``graph_mailbox.py``:
the delta link is the cursor). Either gives this reader the same thing: each
new message's place and raw bytes, the cursor moved on once it is handled.

Each report is matched to its job by ENVID or by the returned Message-ID;
each failed recipient gets a ``bounced`` event, each delayed one ``delayed``;
a job whose every recipient bounced becomes ``bounced``. A report for no
known job, and any message that is no report, is counted and left alone.
Nothing here logs a message's content.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import httpx

from worker.bounces.graph_mailbox import GraphMailbox
from worker.bounces.imap import BounceMailboxError, Mailbox
from worker.bounces.reports import Report, parse_report
from worker.credentials import BounceMailbox, Credentials, OAuthCredentials, Profile
from worker.errors import ConfigError
from worker.metrics import Metrics, Samples
from worker.store import EventEntry, Job, Store, utcnow
from worker.transport.tls import ssl_context

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


@dataclass(frozen=True)
class Fetched:
    """One new message: its place in the mailbox (stable, unique there) and its bytes."""

    ref: str  # "UIDVALIDITY:UID", or "graph:" and a digest of the immutable id
    handle: str  # the UID, or the Graph message id: what ``move`` takes
    data: bytes | None  # None: gone since it was listed


class MailboxReading(Protocol):
    """A mailbox as the reader sees it, IMAP or Graph."""

    def messages(self, limit: int) -> Iterator[Fetched]:
        """New messages since the cursor; the cursor moves on once each is handled."""
        ...

    def move(self, message: Fetched, folder: str) -> None: ...


def read_bounces(
    rt: BounceContext, profile: Profile, *, timeout_seconds: float = 30.0
) -> ReadResult:
    """Read the new messages of ``profile``'s bounce mailbox and record what they report."""
    box = profile.bounces
    assert box is not None, f"profile {profile.name} reads no bounce mailbox"
    key = mailbox_key(profile)
    result = ReadResult()
    with _opened(rt, profile, box, key, timeout_seconds) as mailbox:
        for message in mailbox.messages(MAX_MESSAGES_PER_RUN):
            report = parse_report(message.data) if message.data is not None else None
            handled = report is not None and _record(
                rt, profile, report, f"{key}#{message.ref}", result
            )
            if report is not None and not handled:
                result.unmatched += 1
            result.messages += 1
            if handled and box.move_to:
                _move(mailbox, message, box.move_to, profile.name)
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


@contextmanager
def _opened(
    rt: BounceContext, profile: Profile, box: BounceMailbox, key: str, timeout_seconds: float
) -> Iterator[MailboxReading]:
    if profile.transport == "graph":
        credentials = rt.credentials.get(profile)
        if not isinstance(credentials, OAuthCredentials) or profile.graph_url is None:
            raise ConfigError(f'profile {profile.name}: Microsoft Graph needs auth = "oauth"')
        token = credentials  # the send path's token (same grant, same cache)
        with httpx.Client(verify=ssl_context(profile), timeout=timeout_seconds) as client:
            graph = GraphMailbox(
                client, profile.graph_url, box.username, lambda: token.access_token,
                folder=box.folder, move_to=box.move_to,
                rejected=lambda: rt.credentials.invalidate(profile.name, token),
            )  # fmt: skip
            yield GraphReading(graph, rt.store, key)
        return
    with Mailbox(box.host, box.port, ssl_context(profile), timeout_seconds=timeout_seconds) as imap:
        imap.log_in(rt.credentials.mailbox(profile.name))
        yield ImapReading(imap, box.folder, rt.store, key)


class ImapReading:
    """An IMAP folder: UIDs above the last one handled, under one UIDVALIDITY."""

    def __init__(self, mailbox: Mailbox, folder: str, store: Store, key: str) -> None:
        self.mailbox, self.folder, self.store, self.key = mailbox, folder, store, key

    def messages(self, limit: int) -> Iterator[Fetched]:
        uidvalidity = self.mailbox.select(self.folder)
        cursor = self.store.cursor(self.key)
        # A new UIDVALIDITY means the old UIDs mean nothing: read the folder again
        # (events already written are not written twice).
        last = cursor[1] if cursor and cursor[0] == uidvalidity else 0
        for uid in self.mailbox.uids_after(last)[:limit]:
            yield Fetched(f"{uidvalidity}:{uid}", str(uid), self.mailbox.fetch(uid))
            self.store.advance_cursor(self.key, uidvalidity, uid)

    def move(self, message: Fetched, folder: str) -> None:
        self.mailbox.move(int(message.handle), folder)


class GraphReading:
    """A Graph folder: the delta query's pages from the stored link, a page at a time.

    The link is kept once every message of its page is handled, and only if no
    other reader moved it meanwhile (then this one stops: the other is ahead).
    """

    def __init__(self, mailbox: GraphMailbox, store: Store, key: str) -> None:
        self.mailbox, self.store, self.key = mailbox, store, key

    def messages(self, limit: int) -> Iterator[Fetched]:
        stored = self.store.delta_link(self.key)
        link = stored or self.mailbox.first_link()
        read = 0
        while read < limit:
            page = self.mailbox.page(link)
            for message_id in page.ids:
                yield Fetched(_graph_ref(message_id), message_id, self.mailbox.fetch(message_id))
            read += len(page.ids)
            following = page.next_link or page.delta_link
            assert following is not None  # GraphMailbox.page refuses a page with neither
            if not self.store.advance_delta_link(self.key, stored, following):
                return
            stored = link = following
            if page.next_link is None:  # the round is over: the deltaLink waits for new mail
                return

    def move(self, message: Fetched, folder: str) -> None:
        self.mailbox.move(message.handle, folder)


def _graph_ref(message_id: str) -> str:
    """A Graph id is long (about 150 characters): a digest keeps the event's source short."""
    return "graph:" + hashlib.sha256(message_id.encode()).hexdigest()[:32]


def _move(mailbox: MailboxReading, message: Fetched, folder: str, profile: str) -> None:
    """Move a handled report; one already moved (by a reader whose lock ran out) is fine."""
    try:
        mailbox.move(message, folder)
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
