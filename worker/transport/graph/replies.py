"""What Microsoft Graph's answer to ``sendMail`` means: an Outcome in the same kinds as SMTP's.

Sources: Microsoft Learn, "user: sendMail" (202 Accepted), "Microsoft Graph error
responses and resource types" (the ``{"error": {"code", "message", "innerError"}}``
body), "Microsoft Graph throttling limits" (429 with Retry-After; 503 and 504 are
transient too).
"""

from __future__ import annotations

import httpx

from providers.token_endpoint import parse_retry_after
from worker.transport.outcome import Outcome, OutcomeKind, Phase, RecipientResult, Reply, outcome

TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})

# Graph's error codes that a person has to act on, with what to do.
HINTS = {
    "ErrorAccessDenied": (
        "the app may not send as this mailbox: grant the application permission Mail.Send "
        "with admin consent, and check any application access policy "
        "(Test-ApplicationAccessPolicy) that limits it to some mailboxes"
    ),
    "MailboxNotEnabledForRESTAPI": (
        "the mailbox is not in Exchange Online (on-premises, unlicensed or inactive): "
        'send from a licensed Exchange Online mailbox, or use transport = "smtp"'
    ),
    "ErrorInvalidUser": "no such mailbox: check from_email (or username) against the tenant",
    "ResourceNotFound": "no such mailbox: check from_email (or username) against the tenant",
    "ErrorInvalidRecipients": "Graph refused the recipients: check the addresses",
    "ErrorMessageSizeExceeded": "the message is too large for Graph (4 MB per request)",
    "ErrorSendAsDenied": "the mailbox may not send as the From address: grant Send As",
}
AUTH_HINT = (
    "Graph refused the token: it must be for https://graph.microsoft.com with the "
    "Mail.Send permission (roles for app-only, scp for delegated)"
)


def graph_outcome(response: httpx.Response, recipients: tuple[str, ...]) -> Outcome:
    """The Outcome of one ``sendMail`` response; 202 is the only success."""
    request_ids = _request_ids(response)
    if response.status_code == 202:
        accepted = tuple(RecipientResult(a, True, code=202, text="Accepted") for a in recipients)
        reply = Reply("delivered", 202, "Accepted", queue_id=request_ids)
        return outcome("data", reply, recipients=accepted)
    code, message = _error_of(response)
    kind, phase = _classify(response.status_code, code)
    reply = Reply(
        kind,
        response.status_code,
        f"{code}: {message}" if message else code,
        hint=AUTH_HINT if phase == "auth" else HINTS.get(code),
        queue_id=request_ids,
        retry_after_seconds=parse_retry_after(response.headers.get("Retry-After")),
    )
    return outcome(phase, reply)


def _classify(status: int, code: str) -> tuple[OutcomeKind, Phase]:
    if status == 401:
        return "auth_rejected", "auth"
    if status in TRANSIENT_STATUSES:
        return "transient", "data"
    return "permanent", "data"


def _error_of(response: httpx.Response) -> tuple[str, str]:
    """Graph's error code and message; the status line when the body is not Graph's."""
    try:
        error = response.json().get("error") or {}
        code, message = str(error.get("code") or ""), str(error.get("message") or "")
    except (ValueError, AttributeError):
        code, message = "", ""
    # One line, and short: the message is stored with the attempt.
    message = " ".join(message.split())[:300]
    return code or f"HTTP {response.status_code} {response.reason_phrase}".strip(), message


def _request_ids(response: httpx.Response) -> str | None:
    """Graph's request-id and client-request-id: what Microsoft support asks for."""
    ids = [
        f"{name}={response.headers[name]}"
        for name in ("request-id", "client-request-id")
        if response.headers.get(name)
    ]
    return " ".join(ids)[:200] or None
