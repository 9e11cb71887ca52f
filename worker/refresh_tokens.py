"""Where rotated refresh tokens live, encrypted with MAILPIPE_SECRET_KEY.

Interim home: Redis. The database store replaces it with the same interface
(``providers.RefreshTokenStore``). Redis must persist (AOF) for this to survive
a restart; until the store lands, a lost value falls back to the profile's seed
refresh token, which Microsoft keeps valid (it does not revoke on rotation).
"""

from __future__ import annotations

import json

import redis
from cryptography.fernet import InvalidToken, MultiFernet

from worker import redis_keys
from worker.errors import TokenCacheError


class RedisRefreshTokenStore:
    """``providers.RefreshTokenStore`` on Redis, one encrypted value per profile."""

    def __init__(self, client: redis.Redis, fernet: MultiFernet) -> None:
        self.redis = client
        self.fernet = fernet

    def load(self, profile: str, seed_digest: str) -> str | None:
        try:
            raw = self.redis.get(redis_keys.refresh_token(profile))
        except redis.RedisError as exc:
            raise TokenCacheError(f"profile '{profile}': refresh token store unavailable") from exc
        if raw is None:
            return None
        try:
            data = json.loads(self.fernet.decrypt(raw))
        except InvalidToken:
            return None
        if data.get("seed") != seed_digest:
            # The profile was given a new seed (re-consent): the old chain is void.
            return None
        return str(data["refresh_token"])

    def save(self, profile: str, seed_digest: str, refresh_token: str) -> None:
        payload = json.dumps({"seed": seed_digest, "refresh_token": refresh_token})
        try:
            self.redis.set(redis_keys.refresh_token(profile), self.fernet.encrypt(payload.encode()))
        except redis.RedisError as exc:
            raise TokenCacheError(
                f"profile '{profile}': could not persist the rotated refresh token"
            ) from exc
