"""Credentials: profiles (what a sender needs), presets, and tokens cached across workers."""

from worker.credentials.access import Credentials, OAuthCredentials, SmtpCredentials
from worker.credentials.profiles import (
    OAuthConfig,
    Profile,
    Profiles,
    ProfilesFileError,
    is_loopback,
)
from worker.credentials.profiles_file import load_profiles
from worker.credentials.profiles_source import ProfilesFile
from worker.credentials.token_cache import CachedToken, TokenCache, TokenSource

__all__ = [
    "CachedToken",
    "Credentials",
    "OAuthConfig",
    "OAuthCredentials",
    "Profile",
    "Profiles",
    "ProfilesFile",
    "ProfilesFileError",
    "SmtpCredentials",
    "TokenCache",
    "TokenSource",
    "is_loopback",
    "load_profiles",
]
