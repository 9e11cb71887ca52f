"""mailpipe's one error tree, rooted here because every layer depends on ``providers``.

    MailpipeError                    root: ``kind``, ``hint``, ``retry_after_seconds``;
    │                                ``str()`` is one line and never holds a secret
    └── ProviderError                turning a profile's credentials into a token
        ├── TransientProviderError   network, timeout, 5xx, 429, ``temporarily_unavailable``
        └── PermanentProviderError   retrying cannot help: a person must act
            └── CredentialsConfigError  unusable key, certificate or key file

``worker.errors`` adds the worker's own branches under the same root (see its
docstring). ``kind`` is what the delivery service decides on: ``transient``
(retry with backoff), ``auth_rejected`` (the server refused the credentials:
drop the token, try a fresh one once) or ``permanent`` (never retried).

Token-endpoint failures carry the OAuth error fields (and Microsoft's
``error_codes``, ``trace_id`` and ``correlation_id``) in ``details`` so the
attempt record and the logs can show them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

ErrorKind = Literal["transient", "auth_rejected", "permanent"]


class MailpipeError(Exception):
    """Root of every error mailpipe raises on purpose."""

    kind: ErrorKind = "permanent"

    def __init__(
        self,
        message: str,
        *,
        kind: ErrorKind | None = None,
        hint: str | None = None,
        retry_after_seconds: float | None = None,
    ) -> None:
        self.message = message
        self.hint = hint
        self.retry_after_seconds = retry_after_seconds
        if kind is not None:
            self.kind = kind
        super().__init__(self.__str__())

    def __str__(self) -> str:
        return self.message + (f" — {self.hint}" if self.hint else "")


@dataclass(frozen=True)
class OAuthErrorDetails:
    """What a token endpoint said about a failed request (RFC 6749 §5.2)."""

    status: int | None = None
    error: str | None = None
    error_description: str | None = None
    error_codes: tuple[int, ...] = field(default_factory=tuple)
    trace_id: str | None = None
    correlation_id: str | None = None

    def summary(self) -> str:
        """One line: status, error and the first line of the description."""
        parts = []
        if self.status is not None:
            parts.append(f"HTTP {self.status}")
        if self.error:
            parts.append(self.error)
        text = " ".join(parts)
        if self.error_description:
            # Microsoft appends "\r\nTrace ID: …\r\nCorrelation ID: …" lines.
            first_line = self.error_description.strip().splitlines()[0]
            text = f"{text}: {first_line}" if text else first_line
        return text


class ProviderError(MailpipeError):
    """Root of every credentials error. The message never holds a secret."""

    def __init__(
        self,
        message: str,
        *,
        profile: str | None = None,
        hint: str | None = None,
        details: OAuthErrorDetails | None = None,
        retry_after_seconds: float | None = None,
    ) -> None:
        self.profile = profile
        self.details = details or OAuthErrorDetails()
        super().__init__(message, hint=hint, retry_after_seconds=retry_after_seconds)

    def __str__(self) -> str:
        where = f"profile '{self.profile}': " if self.profile else ""
        return where + super().__str__()


class TransientProviderError(ProviderError):
    """The token endpoint could not answer now; the same request may work later."""

    kind: ErrorKind = "transient"


class PermanentProviderError(ProviderError):
    """The request is wrong (credentials, consent, configuration); do not retry."""


class CredentialsConfigError(PermanentProviderError):
    """A key, certificate or key file cannot be used."""
