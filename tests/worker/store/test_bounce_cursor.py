"""The bounce reader's cursor: how far a mailbox was read, written by two readers at once."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import IntegrityError

from worker.store import Store


def test_a_first_cursor_another_reader_wrote_meanwhile_is_moved_on_not_an_error(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = Store._advance_cursor
    raced: list[bool] = []

    def racing(self: Store, mailbox: str, uidvalidity: int, last_uid: int) -> None:
        if not raced:  # the other reader's insert lands between our read and our insert
            raced.append(True)
            original(self, mailbox, uidvalidity, 3)
            raise IntegrityError("INSERT INTO bounce_cursors", {}, Exception("UNIQUE"))
        original(self, mailbox, uidvalidity, last_uid)

    monkeypatch.setattr(Store, "_advance_cursor", racing)
    store.advance_cursor("alerts@example.test@imap:993/INBOX", 7, 5)
    assert store.cursor("alerts@example.test@imap:993/INBOX") == (7, 5)
    store.advance_cursor("alerts@example.test@imap:993/INBOX", 7, 4)  # never moves back
    assert store.cursor("alerts@example.test@imap:993/INBOX") == (7, 5)
