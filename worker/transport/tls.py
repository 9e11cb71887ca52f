"""The TLS context a transport verifies its server with."""

from __future__ import annotations

import ssl

from worker.credentials import Profile


def ssl_context(profile: Profile) -> ssl.SSLContext:
    """A verifying context (system CAs, or the profile's ``ca_file``)."""
    cafile = str(profile.ca_file) if profile.ca_file else None
    return ssl.create_default_context(cafile=cafile)
