"""The secret key against what the database holds: checked at start, rotated on request."""

from __future__ import annotations

from cryptography.fernet import InvalidToken, MultiFernet

from worker.errors import ConfigError
from worker.store.database import Database
from worker.store.tables import KeyCheck, RefreshToken, utcnow

_KNOWN = b"mailpipe key check"


def check_key(database: Database, fernet: MultiFernet) -> None:
    """Refuse a key that cannot decrypt what is stored (the first key written wins)."""
    with database.session() as session:
        row = session.get(KeyCheck, 1)
        if row is None:
            session.add(KeyCheck(id=1, ciphertext=fernet.encrypt(_KNOWN), created_at=utcnow()))
            return
        ciphertext = row.ciphertext
    try:
        fernet.decrypt(ciphertext)
    except InvalidToken:
        raise ConfigError(
            "MAILPIPE_SECRET_KEY cannot decrypt what this database holds (its tokens were "
            "stored under another key): use that key, or put the new key first and the old "
            "one after it, comma-separated, and run `mailpipe secret-key rotate`"
        ) from None


def rotate_stored(database: Database, fernet: MultiFernet) -> int:
    """Re-encrypt the stored refresh tokens and the key check under the newest key."""
    rotated = 0
    with database.session() as session:
        for row in session.query(RefreshToken).all():
            row.ciphertext = _rotate(fernet, row.ciphertext, f"refresh token of {row.profile}")
            rotated += 1
        check = session.get(KeyCheck, 1)
        if check is not None:
            check.ciphertext = _rotate(fernet, check.ciphertext, "key check")
    return rotated


def _rotate(fernet: MultiFernet, ciphertext: bytes, what: str) -> bytes:
    try:
        return fernet.rotate(ciphertext)
    except InvalidToken:
        raise ConfigError(
            f"the {what} was encrypted with a key not in MAILPIPE_SECRET_KEY: "
            "list the old key after the new one"
        ) from None
