"""IMAP over TLS (imaplib) for the bounce reader: log in, list new UIDs, fetch, move.

Log in with SASL XOAUTH2 (the same ``user=…^Aauth=Bearer …^A^A`` string as
SMTP: Microsoft 365 and Gmail both take it on 993) or, for a password
profile, LOGIN. Messages are fetched with ``BODY.PEEK[]``, so reading leaves
them unseen for a person looking at the mailbox. imaplib's and the socket's
errors become ``BounceMailboxError`` here, once.
"""

from __future__ import annotations

import imaplib
import re
import ssl
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from providers import PasswordCredentials
from worker.credentials import SmtpCredentials
from worker.errors import MailpipeError
from worker.transport.smtp.sasl import xoauth2

_UIDVALIDITY = re.compile(rb"UIDVALIDITY (\d+)")


class BounceMailboxError(MailpipeError):
    """The bounce mailbox could not be read this time (the next poll tries again)."""

    kind = "transient"


@contextmanager
def _imap_errors(what: str) -> Iterator[None]:
    try:
        yield
    except imaplib.IMAP4.abort as exc:
        raise BounceMailboxError(f"{what}: the server closed the connection") from exc
    except imaplib.IMAP4.error as exc:
        # Server answers (NO / BAD) name no secret; keep the first line only.
        text = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise BounceMailboxError(f"{what}: {text}", kind="permanent") from exc
    except (OSError, ssl.SSLError) as exc:
        raise BounceMailboxError(f"{what}: {type(exc).__name__}") from exc


class Mailbox:
    """One IMAP session on one folder; ``with Mailbox(...) as box:``."""

    def __init__(
        self,
        host: str,
        port: int,
        context: ssl.SSLContext,
        *,
        timeout_seconds: float = 30.0,
    ) -> None:
        self.host, self.port = host, port
        self._context = context
        self._timeout = timeout_seconds
        self._imap: imaplib.IMAP4_SSL | None = None
        self.uidvalidity = 0

    def __enter__(self) -> Mailbox:
        with _imap_errors(f"connecting to {self.host}:{self.port}"):
            self._imap = imaplib.IMAP4_SSL(
                self.host, self.port, ssl_context=self._context, timeout=self._timeout
            )
        return self

    def __exit__(self, *exc: object) -> None:
        imap, self._imap = self._imap, None
        if imap is None:
            return
        with suppress(imaplib.IMAP4.error, OSError):
            imap.logout()

    @property
    def imap(self) -> imaplib.IMAP4_SSL:
        assert self._imap is not None, "use Mailbox in a with block"
        return self._imap

    def log_in(self, credentials: SmtpCredentials) -> None:
        with _imap_errors(f"logging in to {self.host}"):
            if isinstance(credentials, PasswordCredentials):
                self.imap.login(credentials.username, credentials.password.get_secret_value())
                return
            response = xoauth2(credentials.username, credentials.access_token).encode()
            # imaplib base64-encodes what the callback returns; a challenge (the error
            # JSON) is answered with an empty line, as for SMTP.
            self.imap.authenticate("XOAUTH2", lambda challenge: b"" if challenge else response)

    def select(self, folder: str) -> int:
        """Open ``folder``; its UIDVALIDITY (UIDs are only comparable under one value)."""
        with _imap_errors(f"selecting {folder}"):
            typ, _ = self.imap.select(_quoted(folder))
            if typ != "OK":
                raise BounceMailboxError(f"selecting {folder}: {typ}", kind="permanent")
            _, values = self.imap.response("UIDVALIDITY")
        first = values[0] if values and values[0] else b"0"
        self.uidvalidity = int(first if isinstance(first, bytes) else str(first).encode())
        return self.uidvalidity

    def uids_after(self, last_uid: int) -> list[int]:
        """The UIDs above ``last_uid``, ascending (``n:*`` also matches the last one: dropped)."""
        with _imap_errors("searching"):
            typ, data = self.imap.uid("SEARCH", f"UID {last_uid + 1}:*")
        if typ != "OK" or not data or not data[0]:
            return []
        raw = data[0] if isinstance(data[0], bytes) else b""
        return sorted(uid for uid in map(int, raw.split()) if uid > last_uid)

    def fetch(self, uid: int) -> bytes | None:
        """The whole message, left unseen; None if it is gone."""
        with _imap_errors(f"fetching UID {uid}"):
            typ, data = self.imap.uid("FETCH", str(uid), "(BODY.PEEK[])")
        for item in data if typ == "OK" else ():
            if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], bytes):
                return item[1]
        return None

    def move(self, uid: int, folder: str) -> None:
        """Move a handled report (RFC 6851 MOVE; Exchange Online and Gmail offer it)."""
        with _imap_errors(f"moving UID {uid} to {folder}"):
            typ, _ = self.imap.uid("MOVE", str(uid), _quoted(folder))
        if typ != "OK":
            raise BounceMailboxError(f"moving UID {uid} to {folder}: {typ}", kind="permanent")


def _quoted(folder: str) -> str:
    """A folder name as an IMAP quoted string (names may hold spaces: "Sent Items")."""
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'
