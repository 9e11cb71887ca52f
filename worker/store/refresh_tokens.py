"""Rotated refresh tokens, durable and encrypted: a ``providers.RefreshTokenStore``."""

from __future__ import annotations

import json
from datetime import datetime

from cryptography.fernet import InvalidToken, MultiFernet

from providers import CredentialsConfigError
from worker.store.database import Database
from worker.store.tables import RefreshToken, utcnow


class DatabaseRefreshTokenStore:
    """``providers.RefreshTokenStore`` in the database: durable, encrypted."""

    def __init__(self, store: Database, fernet: MultiFernet) -> None:
        self.store = store
        self.fernet = fernet

    def load(self, profile: str, seed_digest: str) -> str | None:
        with self.store.session() as session:
            row = session.get(RefreshToken, profile)
            if row is None or row.seed_digest != seed_digest:
                return None
            ciphertext = row.ciphertext
        try:
            return str(json.loads(self.fernet.decrypt(ciphertext))["refresh_token"])
        except InvalidToken:
            # Never fall back to the seed: it has been rotated, and replaying a
            # rotated refresh token revokes the whole chain (RFC 9700 §4.14.2).
            raise CredentialsConfigError(
                "the stored refresh token cannot be decrypted with MAILPIPE_SECRET_KEY",
                profile=profile,
                hint="use the key it was stored with (list it after the new one to rotate)",
            ) from None

    def save(self, profile: str, seed_digest: str, refresh_token: str) -> None:
        ciphertext = self.fernet.encrypt(json.dumps({"refresh_token": refresh_token}).encode())
        with self.store.session() as session:
            row = session.get(RefreshToken, profile)
            if row is None:
                session.add(
                    RefreshToken(
                        profile=profile,
                        seed_digest=seed_digest,
                        ciphertext=ciphertext,
                        updated_at=utcnow(),
                    )
                )
            else:
                row.seed_digest, row.ciphertext, row.updated_at = seed_digest, ciphertext, utcnow()

    def written(self, profile: str) -> tuple[str, datetime] | None:
        """The seed digest the stored token descends from, and when it was stored."""
        with self.store.session() as session:
            row = session.get(RefreshToken, profile)
            return (row.seed_digest, row.updated_at) if row else None

    def last_rotation(self, profile: str) -> datetime | None:
        return last_rotation(self.store, profile)


def last_rotation(store: Database, profile: str) -> datetime | None:
    """When the profile's stored refresh token was last written (no key needed to tell)."""
    with store.session() as session:
        row = session.get(RefreshToken, profile)
        return row.updated_at if row else None
