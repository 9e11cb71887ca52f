"""All of mailpipe's settings: one immutable object read from MAILPIPE_* and .env.

Every number that tunes behaviour is here, with its bounds; classes take their
defaults from ``DEFAULTS`` instead of restating them. Settings that depend on
each other are checked together (``_consistent``), so a bad combination stops
a process at start with one line, not a job at 3 a.m.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Self
from urllib.parse import urlsplit

from cryptography.fernet import Fernet, MultiFernet
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from providers import RetryPolicy
from worker.callback_targets import CallbackPolicy, policy_of
from worker.errors import ConfigError

_TOKEN_POLICY = RetryPolicy()
# The brokers mailpipe runs on (kombu's transports for Redis and RabbitMQ).
BROKER_SCHEMES = ("redis", "rediss", "amqp", "amqps", "pyamqp")


# In an API key's profiles or routes: every one there is.
ANY = "*"


class ApiKeySpec(BaseModel):
    """One key of the HTTP intake: its SHA-256, and what it may use (nothing unless listed).

    An empty list grants nothing: a key may send as the profiles it lists
    (``["*"]``: every profile) and through the routes it lists (``["*"]``:
    every route; a route brings its own profile and recipients). The name is
    recorded on every job the key makes: a key sees its own jobs, or every
    job when it is ``admin``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    profiles: tuple[str, ...] = ()
    routes: tuple[str, ...] = ()
    admin: bool = False


class Settings(BaseSettings):
    """Process-wide settings. URLs are secrets because they may carry passwords."""

    # An empty variable (MAILPIPE_API_KEYS= in a compose or env file) counts as unset.
    model_config = SettingsConfigDict(
        env_prefix="MAILPIPE_", env_file=".env", extra="ignore", frozen=True, env_ignore_empty=True
    )

    broker_url: SecretStr = SecretStr("redis://127.0.0.1:6379/0")
    redis_url: SecretStr = SecretStr("redis://127.0.0.1:6379/1")
    database_url: SecretStr = SecretStr("sqlite:///mailpipe.db")
    profiles_file: Path = Path("profiles.toml")
    # How often a running process looks for an edited profiles file.
    profiles_check_seconds: float = Field(2.0, ge=0.1, le=3600)
    # Fernet key(s) for tokens at rest, newest first, comma-separated.
    secret_key: SecretStr | None = None

    # -- tokens ----------------------------------------------------------------
    # A cached token counts as expired this long before the provider says
    # (MSAL uses 5 minutes), so no SMTP session starts with a dying token.
    token_skew_seconds: int = Field(300, ge=0, le=1800)
    token_connect_timeout_seconds: float = Field(5.0, gt=0, le=60)
    token_read_timeout_seconds: float = Field(10.0, gt=0, le=120)
    token_max_attempts: int = Field(_TOKEN_POLICY.max_attempts, ge=1, le=10)
    token_deadline_seconds: float = Field(_TOKEN_POLICY.deadline_seconds, gt=0, le=300)
    token_retry_after_max_seconds: float = Field(
        _TOKEN_POLICY.retry_after_max_seconds, ge=0, le=300
    )
    # How long a process waits for another one's refresh before giving up.
    token_wait_seconds: float = Field(60.0, gt=0, le=600)
    # Beat refreshes cached tokens that end within skew + this window, and
    # delegated refresh tokens unused this many days (Microsoft: 90-day expiry).
    token_refresh_window_seconds: float = Field(600.0, ge=0, le=86400)
    refresh_token_idle_days: float = Field(7.0, gt=0, le=80)
    # The IdP's inactivity limit for refresh tokens (Microsoft: 90 days): the days left
    # before it are shown by `mailpipe profiles status` and the metrics.
    refresh_token_idle_limit_days: float = Field(90.0, gt=0, le=3650)

    # -- retries and the broker ------------------------------------------------
    # Full jitter, uniform in [0, min(max, base * 2^(n-1))]. With these
    # defaults the last of 13 attempts can come about 6 hours after the first.
    retry_base_seconds: float = Field(30.0, gt=0, le=3600)
    retry_max_seconds: float = Field(3600.0, gt=0, le=86400)
    retry_max_attempts: int = Field(13, ge=1, le=100)
    # Longer delays wait in the database (next_attempt_at), not in the broker:
    # a Redis broker redelivers unacked ETA messages after visibility_timeout.
    broker_max_countdown_seconds: float = Field(900.0, gt=0)
    visibility_timeout_seconds: int = Field(3600, ge=1)
    task_soft_time_limit_seconds: int = Field(240, ge=1)
    task_time_limit_seconds: int = Field(300, ge=1)
    # A claimed job's lease: renewed every third of it while its worker lives,
    # so a job whose worker died is taken over within about this long.
    send_lease_seconds: float = Field(20.0, ge=1, le=3600)
    # A send still running after this is no longer renewed (the threads pool
    # cannot stop a hung send); prefork's time limit stops it before.
    send_max_seconds: float = Field(330.0, gt=0)
    requeue_grace_seconds: float = Field(120.0, gt=0)
    # How often beat sweeps for jobs to publish again (abandoned, lost, due).
    sweep_interval_seconds: float = Field(5.0, ge=1, le=3600)
    # A sent job's outcome is kept in Redis this long, in case recording it fails.
    sent_mark_seconds: float = Field(86400.0, ge=60)
    idempotency_window_seconds: float = Field(86400.0, ge=0)
    # Beat runs the token pre-refresh and the stale-job sweep this often.
    beat_interval_seconds: float = Field(60.0, ge=1, le=3600)

    # -- fallback profiles (a profile's ``fallback = [...]``) -------------------------
    # Which priorities may leave through a fallback profile, comma-separated.
    fallback_priorities: str = Field(
        "high", pattern=r"^\s*(normal|high)\s*(,\s*(normal|high)\s*)*$"
    )
    # A profile that keeps answering "try later" this long is given up for the next.
    fallback_after_seconds: float = Field(60.0, ge=0, le=86400)

    # A worker checks every profile once when it starts (nothing is sent) and logs
    # one line per unhealthy one.
    preflight: bool = True

    # -- SMTP --------------------------------------------------------------------
    smtp_timeout_seconds: float = Field(30.0, gt=0, le=600)
    smtp_max_messages_per_connection: int = Field(100, ge=1, le=100_000)
    smtp_idle_timeout_seconds: float = Field(30.0, ge=0, le=3600)
    smtp_noop_after_seconds: float = Field(5.0, ge=0, le=3600)
    smtp_slot_wait_seconds: float = Field(10.0, ge=0, le=600)
    # A connection's slot (Microsoft 365 allows 3 per mailbox) expires unless
    # renewed, so a dead worker's slots come back by themselves.
    smtp_slot_lease_seconds: float = Field(300.0, gt=0, le=3600)

    # -- the HTTP intake (mailpipe serve) ------------------------------------------
    # JSON list of {"name", "sha256", "profiles", "routes", "admin"}; `mailpipe api-key new`
    # prints an entry. Empty: no key is asked for, and serve binds loopback only.
    # NoDecode: the JSON is read by _json_list, so a bad value is a ValidationError naming
    # the variable, not pydantic-settings' SettingsError (a traceback).
    api_keys: Annotated[tuple[ApiKeySpec, ...], NoDecode] = ()
    # A 10 MB message with its attachments in base64 is about 14 MB of JSON.
    api_max_body_bytes: int = Field(15_000_000, ge=1024, le=100_000_000)
    # Messages in one POST /v1/notifications:batch; more is a 422 before any is checked.
    api_max_batch_messages: int = Field(1000, ge=1, le=10_000)
    # Batch messages one API key may queue a minute, across every serve process.
    api_batch_messages_per_minute: int = Field(10_000, ge=1, le=10_000_000)

    # Job ids per task message of notify_many (bulk fan-out).
    batch_size: int = Field(50, ge=1, le=1000)
    # The part of a profile's rate limits normal priority may fill; the rest is high's.
    rate_share_normal: float = Field(0.8, gt=0, le=1)

    # -- delivery events and callbacks ---------------------------------------------
    # The HMAC-SHA256 key of X-Mailpipe-Signature on every callback; a notification
    # with a callback_url is refused while it is unset (nothing unsigned goes out).
    callback_secret: SecretStr | None = None
    # A callback a receiver does not take is tried again with full jitter, for this long.
    callback_max_age_seconds: float = Field(86400.0, gt=0, le=7 * 86400)
    callback_retry_base_seconds: float = Field(10.0, gt=0, le=3600)
    callback_retry_max_seconds: float = Field(900.0, gt=0, le=86400)
    callback_timeout_seconds: float = Field(10.0, gt=0, le=120)
    # Where callbacks may go, comma-separated (worker/callback_targets.py): host names,
    # *.domain, networks (10.0.0.0/8), *, each with an optional http:// or https:// and
    # :PORT. Empty: public addresses over https only. Checked at intake and at send time.
    callback_allowed: Annotated[tuple[str, ...], NoDecode] = ()
    # How often beat reads the bounce mailboxes ([profiles.NAME.bounces]).
    bounce_poll_seconds: float = Field(60.0, ge=1, le=86400)
    # One reader per mailbox holds its lock at most this long (a dead one's frees itself).
    bounce_lock_seconds: float = Field(300.0, ge=10, le=3600)

    # -- the SMTP relay (mailpipe relay) -------------------------------------------
    relay_tls_cert_file: Path | None = None
    relay_tls_key_file: Path | None = None
    # A second port with TLS from the start (465), besides STARTTLS on --port.
    relay_tls_port: int | None = Field(None, ge=1, le=65535)
    # Without a certificate the relay listens on loopback only, and only with this.
    relay_allow_plaintext_loopback: bool = False
    relay_max_message_bytes: int = Field(10 * 1024 * 1024, ge=1024, le=100_000_000)
    relay_lockout_failures: int = Field(5, ge=1, le=1000)
    relay_lockout_seconds: float = Field(300.0, ge=1, le=86400)

    @field_validator("broker_url")
    @classmethod
    def _broker_scheme(cls, value: SecretStr) -> SecretStr:
        # Checked here: kombu would take any other scheme for a broker it cannot reach.
        url = value.get_secret_value()
        scheme = urlsplit(url).scheme.lower() if "://" in url else ""
        if scheme not in BROKER_SCHEMES:
            said = f"{scheme}:// is not a broker" if scheme else "no scheme"
            accepted = ", ".join(f"{s}://" for s in BROKER_SCHEMES)
            raise ValueError(f"{said}: use {accepted} (Redis or RabbitMQ)")
        return value

    @field_validator("api_keys", mode="before")
    @classmethod
    def _json_list(cls, value: Any) -> Any:
        if not isinstance(value, str | bytes):
            return value
        try:
            return json.loads(value)
        except ValueError:
            raise ValueError(
                "not JSON: expected a list of keys, each as `mailpipe api-key new NAME` prints it"
            ) from None

    @field_validator("callback_allowed", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("callback_allowed", mode="after")
    @classmethod
    def _callback_targets(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        CallbackPolicy.parse(value)  # a bad entry stops the process at start, named
        return value

    @field_validator("api_keys", mode="after")
    @classmethod
    def _one_name_per_key(cls, value: tuple[ApiKeySpec, ...]) -> tuple[ApiKeySpec, ...]:
        # Jobs record the name of the key that made them: two keys of one name would share them.
        names = [spec.name for spec in value]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"two keys named {twice[0]!r}: each key needs a name of its own")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        problems = [
            (
                self.broker_max_countdown_seconds >= self.visibility_timeout_seconds,
                "broker_max_countdown_seconds must be shorter than visibility_timeout_seconds "
                "(the broker would deliver a waiting retry twice)",
            ),
            (
                self.task_time_limit_seconds >= self.visibility_timeout_seconds,
                "task_time_limit_seconds must be shorter than visibility_timeout_seconds "
                "(the broker would hand a running task to a second worker)",
            ),
            (
                self.task_soft_time_limit_seconds >= self.task_time_limit_seconds,
                "task_soft_time_limit_seconds must be shorter than task_time_limit_seconds",
            ),
            (
                self.task_time_limit_seconds >= self.send_max_seconds,
                "send_max_seconds must be longer than task_time_limit_seconds "
                "(a second worker could take over a job the time limit has not stopped)",
            ),
            (
                self.smtp_slot_lease_seconds <= self.smtp_idle_timeout_seconds,
                "smtp_slot_lease_seconds must be longer than smtp_idle_timeout_seconds "
                "(an idle pooled connection would lose its slot)",
            ),
        ]
        wrong = [text for failed, text in problems if failed]
        if wrong:
            raise ValueError("; ".join(wrong))
        return self

    def callback_policy(self) -> CallbackPolicy:
        """Where callbacks may go (``callback_allowed``, parsed once)."""
        return policy_of(self.callback_allowed)

    def falls_back(self, priority: str) -> bool:
        """May a job of this priority be sent through a fallback profile?"""
        return priority in {p.strip() for p in self.fallback_priorities.split(",")}

    @property
    def token_lock_seconds(self) -> float:
        """The single-flight lock must outlive the longest possible refresh.

        A refresh is the deadline plus one last request (connect, write, read)
        plus persisting a rotated refresh token (a busy SQLite waits up to 10 s).
        Expiring early would let a second process replay the old refresh token.
        """
        last_request = self.token_connect_timeout_seconds + 2 * self.token_read_timeout_seconds
        return max(120.0, self.token_deadline_seconds + last_request + 30.0)

    @staticmethod
    def beat_expires_seconds(interval_seconds: float) -> float:
        """A beat run that could not start before the next one is dropped: it does the same."""
        return interval_seconds * 0.9

    @staticmethod
    def beat_lock_seconds(interval_seconds: float) -> float:
        """Held while a beat run works; shorter than its interval so the next run is never
        locked out by a run that died."""
        return interval_seconds * 0.8

    def token_retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            max_attempts=self.token_max_attempts,
            deadline_seconds=self.token_deadline_seconds,
            retry_after_max_seconds=self.token_retry_after_max_seconds,
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


# Every field's default, with no environment read: what classes fall back to.
DEFAULTS = Settings.model_construct()


def load_settings(**values: object) -> Settings:
    """Settings from the environment (and ``values``); ConfigError with one line per problem."""
    try:
        return Settings(**values)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise ConfigError("\n".join(_problem(error) for error in exc.errors())) from None


def _problem(error: object) -> str:
    # The input is left out: it may be a URL with a password in it.
    details = dict(error)  # type: ignore[call-overload]
    loc = details.get("loc") or ()
    message = str(details.get("msg", "invalid")).removeprefix("Value error, ")
    if not loc:
        return f"settings: {message}"
    where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc[1:])
    return f"setting MAILPIPE_{str(loc[0]).upper()}{where}: {message}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
