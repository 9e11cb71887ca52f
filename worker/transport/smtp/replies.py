"""SMTP replies classified: RFC 5321 codes, RFC 3463 enhanced codes, provider hints (pure).

One-line advice for the replies Microsoft 365 and Gmail are known to give
(Microsoft's SMTP AUTH and submission-limit pages, Google's XOAUTH2 guide).
"""

from __future__ import annotations

import re

from worker.transport.outcome import OutcomeKind, Phase, Reply

_ENHANCED = re.compile(r"^\s*([245]\.\d{1,3}\.\d{1,3})\b")
_QUEUE_ID = re.compile(r"queued as ([A-Za-z0-9.-]+)")

# Microsoft turns SMTP basic auth off by default for existing tenants at the end of 2026.
_BASIC_AUTH_OFF = (
    "Microsoft 365 no longer takes passwords for SMTP (basic authentication is off for this "
    'tenant): move the profile to OAuth, auth = "oauth" with grant = "client_credentials" '
    '(app-only) or grant = "refresh_token" and mailpipe oauth authorize NAME'
)

# (code, enhanced code or None for any, the provider it is known from or None
# for any server) → hint. Checked in order. A provider's hint is given only for
# that provider's profiles: a generic server's 535 is no Gmail advice.
_HINTS: tuple[tuple[int | None, str | None, str | None, str], ...] = (
    (535, "5.7.139", "microsoft365", "the tenant or mailbox refuses this AUTH (basic "
     "authentication or SMTP AUTH is off): a password profile must move to OAuth (auth = "
     "\"oauth\", grant = \"client_credentials\" for app-only, or grant = \"refresh_token\" "
     "and mailpipe oauth authorize NAME); an OAuth profile needs SMTP AUTH on for the mailbox: "
     "Set-CASMailbox <mailbox> -SmtpClientAuthenticationDisabled $false"),
    (535, "5.7.3", "microsoft365", "Exchange refused the token: the service principal or the "
     "mailbox permission is missing, the token's audience is not Exchange, or user= is not the "
     "mailbox"),
    (535, "5.7.8", "google_workspace", "Gmail refused the token: check domain-wide delegation "
     "for https://mail.google.com/ and that the mailbox is the JWT subject"),
    (550, "5.7.30", "microsoft365", _BASIC_AUTH_OFF),
    (535, "5.7.30", "microsoft365", _BASIC_AUTH_OFF),
    (554, "5.2.252", "microsoft365", "the mailbox may not send as from_email: use the "
     "authenticated mailbox or grant it SendAs on from_email"),
    (554, "5.2.0", "microsoft365", "the mailbox's sending quota is used up (Microsoft 365: "
     "10,000 recipients a day); wait or spread the load over more mailboxes"),
    (432, "4.3.2", "microsoft365", "too many concurrent connections to this mailbox (Microsoft "
     "365 allows 3)"),
    (530, "5.7.57", "microsoft365", "the server did not accept the authentication: the profile "
     "must use AUTH"),
    (552, None, None, "the message is too large for this server"),
)  # fmt: skip
_PERMANENT_AUTH = frozenset({"5.7.139", "5.7.30"})  # a fresh token cannot fix a disabled SMTP AUTH
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


def hint_for(code: int | None, enhanced: str | None, provider: str | None = None) -> str | None:
    """Advice for this reply from this provider's server (None: any provider's that fits)."""
    for hint_code, hint_enhanced, hint_provider, hint in _HINTS:
        if code != hint_code or hint_enhanced not in (None, enhanced):
            continue
        if hint_provider is None or provider in (None, hint_provider):
            return hint
    return None


def smtp_reply(
    phase: Phase, code: int | None, reply: bytes | str, provider: str | None = None
) -> Reply:
    """Classify a raw SMTP reply (code None: the connection was lost) and add its hint.

    ``provider``: the profile's (``microsoft365``, ``google_workspace``,
    ``generic``); its hints only. None, when it is not known: any that fits.
    """
    text = reply.decode("utf-8", errors="replace") if isinstance(reply, bytes) else reply
    text = " ".join(text.split())  # multi-line replies become one line
    enhanced = enhanced_code(text)
    queue = _QUEUE_ID.search(text) if code is not None and 200 <= code < 300 else None
    return Reply(
        kind=classify(code, text, phase),
        code=code,
        text=text,
        enhanced_code=enhanced,
        hint=hint_for(code, enhanced, provider),
        queue_id=queue.group(1) if queue else None,
    )


def lost(exc: OSError) -> Reply:
    """The connection failed with no reply from the server (``smtplib``'s exceptions are
    OSErrors too, so one ``except OSError`` catches them all): transient, named by its type
    and message on one line. No hint: none is known for a reply that never came."""
    return Reply("transient", None, " ".join(f"{type(exc).__name__}: {exc}".split()))
