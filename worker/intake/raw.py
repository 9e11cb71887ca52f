"""A message that arrives whole (the SMTP relay): kept as it is, made sendable, then queued.

Its headers and MIME parts stay as the tool wrote them. Three things change:
the envelope sender is the profile's mailbox (the one that authenticates);
``From`` is rewritten to that mailbox, with the original in ``Reply-To``,
where the provider refuses other senders (Microsoft 365 and Google
Workspace answer ``SendAsDenied``); and a missing ``Message-ID`` or ``Date``
is added. A present Message-ID is kept, so the tool's own id reaches the
recipient.
"""

from __future__ import annotations

import email.utils
import logging
import re
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from email.message import Message
from email.parser import BytesHeaderParser

from worker.credentials import Profile
from worker.intake import email_policies
from worker.intake.message import DEFAULT_MAX_MESSAGE_BYTES, InvalidMessageError, check_address
from worker.intake.notify import Priority
from worker.metrics import Samples
from worker.queue.producer import Producer
from worker.queue.publishing import publish
from worker.store import Job
from worker.transport.sender import header_lines, split_head, with_profile_from

log = logging.getLogger(__name__)

# Providers that refuse a From other than the mailbox (or one it may send as).
_STRICT_FROM = frozenset({"microsoft365", "google_workspace"})
_BARE_LINE_END = re.compile(rb"\r\n|\r|\n")


def submit_raw(
    rt: Producer,
    profile_name: str,
    recipients: Sequence[str],
    data: bytes,
    *,
    priority: Priority = "normal",
    submitted_by: str = "relay",
    may_show_as: Callable[[str], bool] | None = None,
) -> str:
    """Store the message as a job and queue it; returns the job id. Nothing stored on error.

    SMTPUTF8 is asked of the upstream only when the message needs it (a non-ASCII
    address or raw UTF-8 in a header), never because the client asked for it:
    Go's net/smtp, Alertmanager's, asks whenever a server offers it.

    Lines end in CRLF only: a bare CR or LF becomes CRLF (as Postfix's
    ``smtpd_forbid_bare_newline = normalize`` does), so that no upstream can
    read a line end the client hid inside a line (SMTP smuggling), and the
    lines that then start with a dot are dot-stuffed on the way out.
    ``may_show_as`` says which addresses the visible From and Sender may name
    besides the profile's own; any other is replaced (``sendable``).
    """
    profile = rt.profiles.get(profile_name)
    limit = profile.max_message_bytes or DEFAULT_MAX_MESSAGE_BYTES
    if len(data) > limit:
        raise InvalidMessageError("message", f"{len(data)} bytes, the profile allows {limit}")
    envelope = [check_address("to", r) for r in recipients]
    if not envelope:
        raise InvalidMessageError("to", "no recipients")
    if len(envelope) > profile.max_recipients:
        raise InvalidMessageError(
            "to", f"{len(envelope)} recipients, the profile allows {profile.max_recipients}"
        )
    job_id = uuid.uuid4().hex
    data = _BARE_LINE_END.sub(b"\r\n", data)
    headers = BytesHeaderParser(policy=email_policies.READ).parsebytes(data)
    message, message_id = sendable(data, headers, profile, job_id, may_show_as)
    job = Job(
        id=job_id,
        profile=profile.name,
        status="queued",
        priority=priority,
        idempotency_key=None,
        notification=_record(headers, submitted_by),
        sender=profile.from_email,
        recipients=envelope,
        message=message,
        message_id=message_id,
        smtputf8=_needs_smtputf8([profile.from_email, *envelope], message),
        attempt_count=0,
    )
    return enqueue(rt, job)


def enqueue(rt: Producer, job: Job) -> str:
    """Store, count and publish a built job (the last steps of every way in)."""
    window = timedelta(seconds=rt.settings.idempotency_window_seconds)
    job_id, created = rt.store.add_job(job, idempotency_window=window)
    if created:
        rt.metrics.record(Samples().count("jobs_enqueued", {"profile": job.profile}))
        publish(rt, job_id, job.priority, record=False)  # add_job set published_at
    else:
        log.info("idempotency key %r: job %s already exists", job.idempotency_key, job_id)
    return job_id


def _needs_smtputf8(addresses: Sequence[str], message: bytes) -> bool:
    head, _ = split_head(message)
    return not (all(a.isascii() for a in addresses) and head.isascii())


def sendable(
    data: bytes,
    headers: Message,
    profile: Profile,
    job_id: str,
    may_show_as: Callable[[str], bool] | None = None,
) -> tuple[bytes, str]:
    """The message with the headers it needs to be sent as this profile; and its Message-ID.

    The From is replaced by the profile's (the original kept as Reply-To) where the
    provider refuses another, or where it or the Sender names an address that
    ``may_show_as`` refuses; a replaced Sender is dropped.
    """
    head, body = split_head(data)
    lines = header_lines(head)
    get = headers.get
    original = email.utils.parseaddr(str(get("From", "")))[1]
    if _replace_from(headers, profile, original, may_show_as):
        lines = with_profile_from(lines, profile)
    added: list[bytes] = []
    message_id = str(get("Message-ID") or "").strip()
    if not message_id:
        message_id = f"<{job_id}@{profile.from_email.rsplit('@', 1)[1]}>"
        added.append(b"Message-ID: " + message_id.encode())
    if get("Date") is None:
        added.append(b"Date: " + email.utils.format_datetime(datetime.now(UTC)).encode())
    return b"\r\n".join(lines + added) + body, message_id


def _replace_from(
    headers: Message,
    profile: Profile,
    original: str,
    may_show_as: Callable[[str], bool] | None,
) -> bool:
    own = profile.from_email.lower()
    if profile.provider in _STRICT_FROM and original.lower() != own:
        return True
    if may_show_as is None:
        return False
    shown = _addresses(headers, "From") + _addresses(headers, "Sender")
    return not all(a.lower() == own or may_show_as(a) for a in shown)


def _record(headers: Message, submitted_by: str) -> dict[str, object]:
    """What status and the API show of it: who it came from, to whom, about what."""
    return {
        "via": submitted_by,
        "subject": str(headers.get("Subject") or ""),
        "to": _addresses(headers, "To"),
        "cc": _addresses(headers, "Cc"),
        "from": str(headers.get("From") or ""),
    }


def _addresses(headers: Message, name: str) -> list[str]:
    values = [str(v) for v in headers.get_all(name, [])]
    return [address for _, address in email.utils.getaddresses(values) if address]
