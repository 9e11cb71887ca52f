"""Plain SMTP AUTH (PLAIN / LOGIN): no token, a username and a password."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import SecretStr


@dataclass(frozen=True)
class PasswordCredentials:
    """What AUTH PLAIN or LOGIN sends; the password stays a SecretStr until then."""

    username: str
    password: SecretStr
