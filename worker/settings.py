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
    token_wait_seconds: float = 45.0

    @property
    def token_lock_seconds(self) -> float:
        """The single-flight lock must outlive the longest possible refresh."""
        return (
            self.token_deadline_seconds
            + self.token_connect_timeout_seconds
            + self.token_read_timeout_seconds
            + 5.0
        )

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
