"""Microsoft Graph for the bounce reader: a folder's delta query, each message's MIME, move.

The delta query (``GET /users/{mailbox}/mailFolders/{folder}/messages/delta``)
answers pages joined by ``@odata.nextLink``; the last page carries an
``@odata.deltaLink``, which later returns only what changed since. Either link
is where a later read goes on from, so the reader keeps the one it is at as
the mailbox's cursor. Entries with ``@removed`` (deleted, or moved away) are
skipped. A message's MIME is ``GET …/messages/{id}/$value``; ``POST
…/messages/{id}/move`` moves it. Microsoft Learn: "message: delta", "Get MIME
content of a message", "message: move".

Immutable ids (``Prefer: IdType="ImmutableId"``) keep a message's id when it
moves, so a report moved by one reader and seen again by another has the same
id. httpx's errors and Graph's error answers become ``BounceMailboxError``
here, once: throttling (429, with Retry-After) and 5xx are transient (the
next poll goes on from the cursor); 401 and 403 name the permission.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote

import httpx

from worker.bounces.imap import BounceMailboxError

# Messages per delta page: a page is read, handled and its link kept before the next.
PAGE_SIZE = 50
_ID_HEADERS = {"Prefer": f'IdType="ImmutableId", odata.maxpagesize={PAGE_SIZE}'}


@dataclass(frozen=True)
class DeltaPage:
    """One page of the delta query: new message ids, and the link to call next."""

    ids: tuple[str, ...]
    next_link: str | None  # more pages of this round
    delta_link: str | None  # the round's end: call it at a later poll


class GraphMailbox:
    """One mailbox folder through Graph, with the token ``token()`` gives."""

    def __init__(
        self,
        client: httpx.Client,
        graph_url: str,
        mailbox: str,
        token: Callable[[], str],
        *,
        folder: str = "inbox",
        move_to: str | None = None,
        rejected: Callable[[], None] | None = None,
    ) -> None:
        self._client = client
        self._token = token
        self._rejected = rejected
        self._root = graph_url.rstrip("/")
        self._user = f"{self._root}/users/{quote(mailbox, safe='@')}"
        self.folder = folder
        self.move_to = move_to

    def first_link(self) -> str:
        """Where a mailbox never read starts: a delta round over the whole folder."""
        folder = quote(self.folder, safe="")
        return f"{self._user}/mailFolders/{folder}/messages/delta?$select=id"

    def page(self, link: str) -> DeltaPage:
        """The delta page at ``link`` (a nextLink, a deltaLink or ``first_link()``)."""
        what = "reading the folder's changes"
        if not link.startswith(self._root + "/"):
            # The link goes out with the token: only ever to the profile's Graph.
            raise BounceMailboxError(f"{what}: a delta link outside {self._root}",
                                     kind="permanent")  # fmt: skip
        try:
            body = self._request("GET", link, what).json()
        except ValueError as exc:
            raise BounceMailboxError(f"{what}: Graph's answer is no JSON") from exc
        if not isinstance(body, dict):
            raise BounceMailboxError(f"{what}: Graph's answer is no JSON object")
        values = body.get("value")
        ids = tuple(
            str(entry["id"])
            for entry in (values if isinstance(values, list) else [])
            if isinstance(entry, dict) and "id" in entry and "@removed" not in entry
        )
        next_link, delta_link = body.get("@odata.nextLink"), body.get("@odata.deltaLink")
        if not isinstance(next_link or delta_link, str):
            raise BounceMailboxError(f"{what}: Graph sent no next link")
        return DeltaPage(
            ids,
            next_link if isinstance(next_link, str) and next_link else None,
            delta_link if isinstance(delta_link, str) and delta_link else None,
        )

    def fetch(self, message_id: str) -> bytes | None:
        """The message's MIME; None if it is gone (deleted or moved since the delta)."""
        url = f"{self._user}/messages/{quote(message_id, safe='')}/$value"
        response = self._request("GET", url, "fetching a message", missing_ok=True)
        return None if response.status_code == 404 else response.content

    def move(self, message_id: str, folder: str) -> None:
        """Move a handled report to ``folder`` (a folder id or a well-known name)."""
        url = f"{self._user}/messages/{quote(message_id, safe='')}/move"
        self._request("POST", url, f"moving a message to {folder}", json={"destinationId": folder})

    def _request(
        self,
        method: str,
        url: str,
        what: str,
        *,
        missing_ok: bool = False,
        json: dict[str, str] | None = None,
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self._token()}", **_ID_HEADERS}
        try:
            response = self._client.request(method, url, headers=headers, json=json)
        except httpx.TransportError as exc:
            raise BounceMailboxError(f"{what}: Graph unreachable ({type(exc).__name__})") from exc
        if response.is_success or (missing_ok and response.status_code == 404):
            return response
        raise self._error(what, response)

    def _error(self, what: str, response: httpx.Response) -> BounceMailboxError:
        status = response.status_code
        code = _error_code(response)
        ids = f"request-id {response.headers.get('request-id', '-')}"
        if status == 401 and self._rejected is not None:
            self._rejected()  # revoked or expired early: the next poll gets a fresh token
        if status in (401, 403):
            needed = "Mail.ReadWrite" if self.move_to else "Mail.Read"
            return BounceMailboxError(
                f"{what}: Graph answered {status} {code}: the app needs the {needed} "
                f"application permission on this mailbox (admin consent; an application "
                f"access policy must include it) ({ids})",
                kind="permanent",
            )
        if status == 429 or status >= 500:
            wait = _seconds(response.headers.get("Retry-After"))
            after = f", Retry-After {wait:g} s" if wait is not None else ""
            return BounceMailboxError(
                f"{what}: Graph answered {status} {code}{after} ({ids})", retry_after_seconds=wait
            )
        return BounceMailboxError(f"{what}: Graph answered {status} {code} ({ids})",
                                  kind="permanent")  # fmt: skip


def _error_code(response: httpx.Response) -> str:
    """Graph's ``error.code`` (never its message, which may quote the request)."""
    try:
        body = response.json()
    except ValueError:
        return "-"
    error = body.get("error") if isinstance(body, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    return str(code)[:80] if code else "-"


def _seconds(value: str | None) -> float | None:
    """Retry-After in seconds (Graph sends delta-seconds, never an HTTP date)."""
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None
