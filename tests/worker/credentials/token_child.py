"""Runs in a separate process (multiprocessing 'spawn'): one worker asking for a token."""

from __future__ import annotations

from typing import Any

import httpx
import redis
from cryptography.fernet import Fernet, MultiFernet
from pydantic import SecretStr

from providers import ClientCredentialsGrant
from worker.credentials.tokens import TokenCache

CLIENT_SECRET = "child-process-client-secret"


def make_grant(token_url: str) -> ClientCredentialsGrant:
    return ClientCredentialsGrant(
        name="m365",
        token_url=token_url,
        client_id="app",
        scope="https://outlook.office365.com/.default",
        client_secret=SecretStr(CLIENT_SECRET),
    )


def get_token(
    redis_url: str, secret_key: str, token_url: str, start: Any, results: Any, lock_seconds: float
) -> None:
    with httpx.Client(timeout=30.0) as http:
        cache = TokenCache(
            redis.Redis.from_url(redis_url),
            MultiFernet([Fernet(secret_key)]),
            http,
            lock_seconds=lock_seconds,
        )
        start.wait()
        result = cache.get(make_grant(token_url))
        results.put((result.source, result.token.access_token))
        cache.close()
