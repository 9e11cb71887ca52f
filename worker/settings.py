"""All of mailpipe's settings: one immutable object read from MAILPIPE_* and .env."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from cryptography.fernet import Fernet, MultiFernet
from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from worker.errors import ConfigError


class Settings(BaseSettings):
    """Process-wide settings. URLs are secrets because they may carry passwords."""

    model_config = SettingsConfigDict(
        env_prefix="MAILPIPE_", env_file=".env", extra="ignore", frozen=True
    )

    broker_url: SecretStr = SecretStr("redis://127.0.0.1:6379/0")
    redis_url: SecretStr = SecretStr("redis://127.0.0.1:6379/1")
    database_url: SecretStr = SecretStr("sqlite:///mailpipe.db")
    profiles_file: Path = Path("profiles.toml")
    # Fernet key(s) for tokens at rest, newest first, comma-separated.
    secret_key: SecretStr | None = None

    # A cached token counts as expired this long before the provider says
    # (MSAL uses 5 minutes), so no SMTP session starts with a dying token.
    token_skew_seconds: int = 300
    token_connect_timeout_seconds: float = 5.0
    token_read_timeout_seconds: float = 10.0
    token_max_attempts: int = 4
    token_deadline_seconds: float = 20.0
    token_retry_after_max_seconds: float = 10.0
    # How long a process waits for another one's refresh before giving up.
    token_wait_seconds: float = 60.0
    # Beat refreshes cached tokens that end within skew + this window, and
    # delegated refresh tokens unused this many days (Microsoft: 90-day expiry).
    token_refresh_window_seconds: float = 600.0
    refresh_token_idle_days: float = 7.0

    # Retries: full jitter, uniform in [0, min(max, base * 2^(n-1))]. With these
    # defaults the last of 13 attempts can come about 6 hours after the first.
    retry_base_seconds: float = 30.0
    retry_max_seconds: float = 3600.0
    retry_max_attempts: int = 13
    # Longer delays wait in the database (next_attempt_at), not in the broker:
    # a Redis broker redelivers unacked ETA messages after visibility_timeout.
    broker_max_countdown_seconds: float = 900.0
    visibility_timeout_seconds: int = 3600
    task_soft_time_limit_seconds: int = 240
    task_time_limit_seconds: int = 300
    # A claimed job whose worker died is sent again after this lease ends.
    send_lease_seconds: float = 360.0
    requeue_grace_seconds: float = 120.0
    idempotency_window_seconds: float = 86400.0

    smtp_timeout_seconds: float = 30.0
    smtp_max_messages_per_connection: int = 100
    smtp_idle_timeout_seconds: float = 30.0
    smtp_noop_after_seconds: float = 5.0
    smtp_slot_wait_seconds: float = 10.0

    @property
    def token_lock_seconds(self) -> float:
        """The single-flight lock must outlive the longest possible refresh.

        A refresh is the deadline plus one last request (connect, write, read)
        plus persisting a rotated refresh token (a busy SQLite waits up to 10 s).
        Expiring early would let a second process replay the old refresh token.
        """
        last_request = self.token_connect_timeout_seconds + 2 * self.token_read_timeout_seconds
        return max(120.0, self.token_deadline_seconds + last_request + 30.0)

    def fernet(self) -> MultiFernet:
        """Encrypts with the first key, decrypts with any (key rotation)."""
        if self.secret_key is None or not self.secret_key.get_secret_value().strip():
            raise ConfigError(
                "MAILPIPE_SECRET_KEY is not set: generate one with "
                "`mailpipe secret-key` and put it in the environment or .env"
            )
        keys = [k.strip() for k in self.secret_key.get_secret_value().split(",") if k.strip()]
        try:
            return MultiFernet([Fernet(k) for k in keys])
        except ValueError:
            raise ConfigError(
                "MAILPIPE_SECRET_KEY is not a Fernet key (32 url-safe base64 bytes); "
                "generate one with `mailpipe secret-key`"
            ) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
