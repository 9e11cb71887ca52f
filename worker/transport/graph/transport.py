"""The Microsoft Graph transport: ``POST /users/{mailbox}/sendMail`` with the MIME message.

The message goes exactly as built (headers, Message-ID, attachments), base64
encoded with ``Content-Type: text/plain`` (Microsoft Learn, "Send Outlook
messages in MIME format"). Graph takes its recipients from the MIME headers,
so envelope recipients that no To or Cc header names go in a Bcc header, which
Exchange keeps from the recipients. Requests in flight per mailbox are capped
across every worker by the same Redis slots as SMTP connections (Outlook allows
4). A 401 drops the token in every process and one fresh token is tried at once.
"""

from __future__ import annotations

import base64
import logging
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from email.parser import BytesHeaderParser
from email.utils import getaddresses
from urllib.parse import quote

import httpx

from providers.token_endpoint import certificate_error
from worker.credentials import Credentials, OAuthCredentials, Profile, SmtpCredentials
from worker.errors import ConfigError
from worker.settings import DEFAULTS, Settings
from worker.transport.attempts import wait_for_slot, with_fresh_token
from worker.transport.base import OutgoingMessage, SendResult
from worker.transport.errors import ConnectionsBusy, SessionError
from worker.transport.graph.replies import graph_outcome
from worker.transport.outcome import Outcome, Phase, Reply, outcome
from worker.transport.slots import ConnectionSlots, release
from worker.transport.tls import ssl_context

log = logging.getLogger(__name__)


class GraphTransport:
    """The Graph ``Transport``: one HTTP client per CA, shared by every thread."""

    def __init__(
        self,
        credentials: Credentials,
        *,
        slots: ConnectionSlots | None = None,
        timeout_seconds: float = DEFAULTS.smtp_timeout_seconds,
        slot_wait_seconds: float = DEFAULTS.smtp_slot_wait_seconds,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.credentials = credentials
        self.slots = slots
        self.timeout_seconds = timeout_seconds
        self.slot_wait_seconds = slot_wait_seconds
        self._sleep = sleep
        self._clients: dict[str | None, httpx.Client] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_settings(
        cls, settings: Settings, credentials: Credentials, slots: ConnectionSlots | None
    ) -> GraphTransport:
        return cls(
            credentials,
            slots=slots,
            timeout_seconds=settings.smtp_timeout_seconds,
            slot_wait_seconds=settings.smtp_slot_wait_seconds,
        )

    def send(self, profile: Profile, message: OutgoingMessage) -> SendResult:
        """Send one message; Graph's answers are Outcomes, credential trouble is raised."""
        try:
            _, lease = wait_for_slot(
                self.slots,
                profile,
                wait_seconds=self.slot_wait_seconds,
                sleep=self._sleep,
                busy=f"all {profile.max_connections} Graph requests allowed at once for this "
                "mailbox are in flight",
            )
        except ConnectionsBusy as exc:
            return SendResult(exc.outcome, busy=True)
        except SessionError as exc:
            return SendResult(exc.outcome)
        try:
            return self._send(profile, message)
        finally:
            release(self.slots, profile, lease)

    def send_many(
        self, profile: Profile, messages: Sequence[OutgoingMessage]
    ) -> Iterator[SendResult]:
        """One request per message, in order (Graph's JSON $batch is not used)."""
        return (self.send(profile, message) for message in messages)

    def close(self) -> None:
        with self._lock:
            clients, self._clients = self._clients, {}
        for client in clients.values():
            client.close()

    # -- internals -----------------------------------------------------------

    def _send(self, profile: Profile, message: OutgoingMessage) -> SendResult:
        body = base64.b64encode(with_bcc(message))

        def post(credentials: SmtpCredentials) -> Outcome:
            return self._post(profile, body, _oauth(profile, credentials), message.recipients)

        result, credentials, elapsed = with_fresh_token(
            self.credentials,
            profile,
            post,
            lambda result: result.text if result.kind == "auth_rejected" else None,
        )
        token_source = _oauth(profile, credentials).source
        return SendResult(result, token_source=token_source, token_seconds=elapsed)

    def _post(
        self,
        profile: Profile,
        body: bytes,
        credentials: OAuthCredentials,
        recipients: tuple[str, ...],
    ) -> Outcome:
        mailbox = quote(profile.username, safe="@")
        url = f"{profile.graph_url}/users/{mailbox}/sendMail"
        if not profile.save_to_sent_items:
            url += "?saveToSentItems=false"
        request_id = str(uuid.uuid4())
        headers = {
            "Authorization": f"Bearer {credentials.access_token}",
            "Content-Type": "text/plain",
            "client-request-id": request_id,
            "return-client-request-id": "true",
        }
        try:
            response = self._client(profile).post(url, content=body, headers=headers)
        except httpx.TransportError as exc:
            return _network_outcome(profile, exc, request_id)
        return graph_outcome(response, recipients)

    def _client(self, profile: Profile) -> httpx.Client:
        key = str(profile.ca_file) if profile.ca_file else None
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                timeout = profile.timeout_seconds or self.timeout_seconds
                verify: ssl.SSLContext = ssl_context(profile)
                client = self._clients[key] = httpx.Client(verify=verify, timeout=timeout)
            return client


def _oauth(profile: Profile, credentials: SmtpCredentials) -> OAuthCredentials:
    if not isinstance(credentials, OAuthCredentials):  # the loader refuses this
        raise ConfigError(f'profile {profile.name}: Microsoft Graph needs auth = "oauth"')
    return credentials


def _network_outcome(profile: Profile, exc: httpx.TransportError, request_id: str) -> Outcome:
    ids = f"client-request-id={request_id}"
    untrusted = certificate_error(exc)
    if untrusted is not None:
        text = f"certificate of {profile.graph_url} not trusted: {untrusted}"
        hint = "set ca_file to the CA that signed it, or fix graph_url"
        return outcome("tls", Reply("permanent", None, text, hint=hint, queue_id=ids))
    # Before the request went out nothing was sent; after it, Graph may have
    # taken the message: a retry can then send it twice (as after an SMTP timeout
    # at the end of DATA), which beats never sending a page.
    connecting = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
    phase: Phase = "connect" if connecting else "data"
    text = f"Graph unreachable: {type(exc).__name__}"
    return outcome(phase, Reply("transient", None, text, queue_id=ids))


def with_bcc(message: OutgoingMessage) -> bytes:
    """The message, with a Bcc header naming envelope recipients no To or Cc header names."""
    headers = BytesHeaderParser().parsebytes(message.data)
    named = {
        address.lower()
        for _, address in getaddresses(
            [str(v) for field in ("to", "cc", "bcc") for v in headers.get_all(field) or []]
        )
    }
    hidden = [r for r in message.recipients if r.lower() not in named]
    if not hidden:
        return message.data
    return b"Bcc: " + ", ".join(hidden).encode() + b"\r\n" + message.data
