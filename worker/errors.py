"""Errors of the worker side.

    MailpipeError            root; ``str()`` is one line, never a secret
    ├── ConfigError          settings or profiles file unusable; fix and restart
    │   └── UnknownProfileError
    ├── TokenCacheError      the shared token cache could not serve (transient)
    └── LimitsUnavailableError  the shared sending limits could not be read (transient)

Credential errors from ``providers`` pass through unchanged: they already split
transient from permanent and carry the token endpoint's details.
"""

from __future__ import annotations


class MailpipeError(Exception):
    """Root of the worker's own errors."""

    transient = False


class ConfigError(MailpipeError):
    """Settings or the profiles file are wrong; the message says where."""


class UnknownProfileError(ConfigError):
    def __init__(self, name: str, known: list[str]) -> None:
        names = ", ".join(sorted(known)) or "none"
        super().__init__(f"unknown profile '{name}' (profiles: {names})")
        self.name = name


class TokenCacheError(MailpipeError):
    """Redis could not be reached, or no token arrived in time; try again later."""

    transient = True


class LimitsUnavailableError(MailpipeError):
    """Redis, which holds the sending limits shared by all workers, could not be reached."""

    transient = True
