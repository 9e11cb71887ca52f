"""Access tokens in Redis, encrypted at rest (Fernet), each key living as long as its token.

``MultiFernet`` decrypts with any configured key and encrypts with the
newest, so a key rotation is: list the new key first, then ``rotate``.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import redis
from cryptography.fernet import InvalidToken, MultiFernet

from providers import Token
from worker import redis_keys

log = logging.getLogger(__name__)


class SealedTokens:
    """Reads and writes encrypted tokens under their Redis keys; redis-py errors pass through."""

    def __init__(self, client: redis.Redis, fernet: MultiFernet) -> None:
        self.redis = client
        self.fernet = fernet

    def read(self, key: str) -> Token | None:
        return self._decrypt(self.redis.get(key))

    def write(self, key: str, token: Token) -> None:
        ttl_ms = int((token.expires_at - time.time()) * 1000)
        if ttl_ms <= 0:
            return
        payload = json.dumps(
            {
                "access_token": token.access_token,
                "expires_at": token.expires_at,
                "token_type": token.token_type,
                "scope": token.scope,
            }
        )
        self.redis.set(key, self.fernet.encrypt(payload.encode()), px=ttl_ms)

    def delete(self, profile: str, rejected: Token) -> None:
        """Delete ``rejected`` under each of ``profile``'s keys, never a token written since."""
        for key in self.redis.scan_iter(match=redis_keys.token(profile, "*"), count=100):
            self._delete_if_holds(key, rejected)

    def rotate(self) -> tuple[int, int]:
        """Re-encrypt every cached token under the newest key: (rotated, dropped unreadable)."""
        rotated = dropped = 0
        for key in self.redis.scan_iter(match=redis_keys.token("*", "*"), count=100):
            raw, ttl_ms = self.redis.get(key), self.redis.pttl(key)
            if raw is None or ttl_ms <= 0:
                continue
            try:
                self.redis.set(key, self.fernet.rotate(raw), px=ttl_ms)
                rotated += 1
            except InvalidToken:  # a key no longer listed: a cache miss, fetched again
                self.redis.delete(key)
                dropped += 1
        return rotated, dropped

    def _delete_if_holds(self, key: str | bytes, rejected: Token) -> None:
        def delete(pipe: Any) -> None:
            token = self._decrypt(pipe.get(key))
            if token is not None and token.access_token == rejected.access_token:
                pipe.multi()
                pipe.delete(key)

        self.redis.transaction(delete, key)

    def _decrypt(self, raw: Any) -> Token | None:
        if raw is None:
            return None
        try:
            data = json.loads(self.fernet.decrypt(raw))
        except InvalidToken:
            # Encrypted with a key no longer configured (the key check at start
            # keeps processes of one database on one key): a miss.
            log.warning("a cached token cannot be decrypted with MAILPIPE_SECRET_KEY; ignored")
            return None
        return Token(
            access_token=data["access_token"],
            expires_at=float(data["expires_at"]),
            token_type=data.get("token_type", "Bearer"),
            scope=data.get("scope"),
        )
