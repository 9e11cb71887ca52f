"""SMTP replies classified: RFC 5321 codes, RFC 3463 enhanced codes, provider hints (pure).

One-line advice for the replies Microsoft 365 and Gmail are known to give
(Microsoft's SMTP AUTH and submission-limit pages, Google's XOAUTH2 guide).
"""

from __future__ import annotations

import re

from worker.transport.outcome import OutcomeKind, Phase, Reply

_ENHANCED = re.compile(r"^\s*([245]\.\d{1,3}\.\d{1,3})\b")
_QUEUE_ID = re.compile(r"queued as ([A-Za-z0-9.-]+)")

# (code, enhanced code or None for any) → hint. Checked in order.
_HINTS: tuple[tuple[int | None, str | None, str], ...] = (
    (535, "5.7.139", "SMTP AUTH is disabled for this tenant or mailbox: "
     "Set-CASMailbox <mailbox> -SmtpClientAuthenticationDisabled $false"),
    (535, "5.7.3", "Exchange refused the token: the service principal or the mailbox permission "
     "is missing, the token's audience is not Exchange, or user= is not the mailbox"),
    (535, "5.7.8", "Gmail refused the token: check domain-wide delegation for "
     "https://mail.google.com/ and that the mailbox is the JWT subject"),
    (550, "5.7.30", "basic authentication is switched off for this tenant: move the profile to "
     "auth = \"oauth\""),
    (554, "5.2.252", "the mailbox may not send as from_email: use the authenticated mailbox or "
     "grant it SendAs on from_email"),
    (554, "5.2.0", "the mailbox's sending quota is used up (Microsoft 365: 10,000 recipients a "
     "day); wait or spread the load over more mailboxes"),
    (432, "4.3.2", "too many concurrent connections to this mailbox (Microsoft 365 allows 3)"),
    (530, "5.7.57", "the server did not accept the authentication: the profile must use AUTH"),
    (552, None, "the message is too large for this server"),
)  # fmt: skip
_PERMANENT_AUTH = frozenset({"5.7.139"})  # a fresh token cannot fix a disabled SMTP AUTH
_AUTH_REJECTED = frozenset({535, 534})


def enhanced_code(text: str) -> str | None:
    match = _ENHANCED.match(text)
    return match.group(1) if match else None


def classify(code: int | None, text: str, phase: Phase) -> OutcomeKind:
    """Map an SMTP reply (or a lost connection, code None) to an outcome kind."""
    if code is None:
        return "transient"
    if 200 <= code < 400:
        return "delivered"
    enhanced = enhanced_code(text)
    if phase == "auth":
        if enhanced in _PERMANENT_AUTH:
            return "permanent"
        if code in _AUTH_REJECTED or (code == 530 and enhanced == "5.7.57"):
            return "auth_rejected"
        if code == 454 and enhanced == "4.7.0":
            return "auth_rejected"
    return "transient" if 400 <= code < 500 else "permanent"


def hint_for(code: int | None, enhanced: str | None) -> str | None:
    for hint_code, hint_enhanced, hint in _HINTS:
        if code == hint_code and (hint_enhanced is None or hint_enhanced == enhanced):
            return hint
    return None


def smtp_reply(phase: Phase, code: int | None, reply: bytes | str) -> Reply:
    """Classify a raw SMTP reply (code None: the connection was lost) and add its hint."""
    text = reply.decode("utf-8", errors="replace") if isinstance(reply, bytes) else reply
    text = " ".join(text.split())  # multi-line replies become one line
    enhanced = enhanced_code(text)
    queue = _QUEUE_ID.search(text) if code is not None and 200 <= code < 300 else None
    return Reply(
        kind=classify(code, text, phase),
        code=code,
        text=text,
        enhanced_code=enhanced,
        hint=hint_for(code, enhanced),
        queue_id=queue.group(1) if queue else None,
    )
