"""Credentials: profiles (what a sender needs), presets, and tokens cached across workers.

The names below are imported on first use (PEP 562), so that reading the
profiles file does not import the token cache (Redis, the HTTP client).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from providers.lazy import lazy_names

if TYPE_CHECKING:
    from worker.credentials.access import Credentials, OAuthCredentials, SmtpCredentials
    from worker.credentials.profiles import (
        BounceMailbox,
        OAuthConfig,
        Profile,
        Profiles,
        ProfilesFileError,
        is_loopback,
    )
    from worker.credentials.profiles_document import (
        ProfilesDocument,
        load_profiles,
        read_profiles_document,
    )
    from worker.credentials.profiles_source import ProfilesFile
    from worker.credentials.tokens import CachedToken, TokenCache, TokenSource

# Each public name and the module that defines it.
_HOMES = {
    "CachedToken": "worker.credentials.tokens",
    "Credentials": "worker.credentials.access",
    "BounceMailbox": "worker.credentials.profiles",
    "OAuthConfig": "worker.credentials.profiles",
    "OAuthCredentials": "worker.credentials.access",
    "Profile": "worker.credentials.profiles",
    "Profiles": "worker.credentials.profiles",
    "ProfilesDocument": "worker.credentials.profiles_document",
    "ProfilesFile": "worker.credentials.profiles_source",
    "ProfilesFileError": "worker.credentials.profiles",
    "SmtpCredentials": "worker.credentials.access",
    "TokenCache": "worker.credentials.tokens",
    "TokenSource": "worker.credentials.tokens",
    "is_loopback": "worker.credentials.profiles",
    "load_profiles": "worker.credentials.profiles_document",
    "read_profiles_document": "worker.credentials.profiles_document",
}

__all__ = [
    "BounceMailbox",
    "CachedToken",
    "Credentials",
    "OAuthConfig",
    "OAuthCredentials",
    "Profile",
    "Profiles",
    "ProfilesDocument",
    "ProfilesFile",
    "ProfilesFileError",
    "SmtpCredentials",
    "TokenCache",
    "TokenSource",
    "is_loopback",
    "load_profiles",
    "read_profiles_document",
]


__getattr__, __dir__ = lazy_names(__name__, _HOMES)
