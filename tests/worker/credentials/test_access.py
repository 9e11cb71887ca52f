"""Credentials: a grant per version of its profile, the Profile the caller resolved."""

from __future__ import annotations

from tests.fakes.smtp_server import ServerFactory
from tests.worker.conftest import CredentialsFactory


def test_a_grant_is_built_once_per_version_of_its_profile(
    make_server: ServerFactory, make_credentials: CredentialsFactory
) -> None:
    credentials = make_credentials(make_server())
    profile = credentials.profiles.get("p")
    first = credentials.grant(profile)
    assert credentials.grant(profile) is first
    # A reload makes new Profile objects: their grant may differ (a new secret, scope...).
    reloaded = profile.model_copy(update={"oauth": profile.oauth})
    assert credentials.grant(reloaded) is not first
