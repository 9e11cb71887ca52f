"""The worker's errors, under the project's one root (``providers.errors.MailpipeError``).

    MailpipeError                         kind: transient | auth_rejected | permanent
    ├── ProviderError …                   credentials → token (providers.errors)
    ├── ConfigError                       settings or profiles file unusable; fix and restart
    │   ├── UnknownProfileError
    │   └── ProfilesFileError             one line per problem (worker.credentials)
    ├── InvalidMessageError               a notification that cannot be sent (worker.intake)
    ├── UnavailableError                  transient: a shared service could not serve now
    │   ├── TokenCacheError               the token cache (Redis), or no token in time
    │   ├── LimitsUnavailableError        the shared sending limits (Redis)
    │   ├── StoreUnavailableError         the database (worker.store)
    │   └── BrokerUnavailableError        the broker (worker.queue)
    │       └── QueueNotFoundError        a passive declare: no queue of that name yet
    ├── SessionError                      the SMTP session cannot go on (worker.transport)
    │   ├── ConnectionDropped             nothing was sent yet: safe to try again
    │   └── ConnectionsBusy               every connection the mailbox allows is in use
    ├── BounceMailboxError                transient: the bounce mailbox, this poll (worker.bounces)
    ├── CallbackRefusedError              a callback's target is not allowed (worker.delivery)
    └── RenderError                       a route's template failed (worker.faces.http)

Foreign exceptions (httpx, smtplib, redis, SQLAlchemy, kombu) are translated into
this tree once, at their adapter; everything above catches only ours.
Where a failure becomes an outcome, and who decides what happens next, is in
docs/architecture.md ("The failure model").
"""

from __future__ import annotations

from providers.errors import ErrorKind, MailpipeError, ProviderError

__all__ = [
    "ConfigError",
    "ErrorKind",
    "LimitsUnavailableError",
    "MailpipeError",
    "ProviderError",
    "TokenCacheError",
    "UnavailableError",
    "UnknownProfileError",
]


class ConfigError(MailpipeError):
    """Settings or the profiles file are wrong; the message says where."""


class UnknownProfileError(ConfigError):
    def __init__(self, name: str, known: list[str]) -> None:
        names = ", ".join(sorted(known)) or "none"
        super().__init__(f"unknown profile '{name}' (profiles: {names})")
        self.name = name


class UnavailableError(MailpipeError):
    """A service shared with other processes (Redis, the database) could not serve; retry."""

    kind: ErrorKind = "transient"


class TokenCacheError(UnavailableError):
    """Redis could not be reached, or no token arrived in time; try again later."""


class LimitsUnavailableError(UnavailableError):
    """Redis, which holds the sending limits shared by all workers, could not be reached."""
