"""Fixtures for the SMTP transport tests against a real server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from worker.transport.smtp import SmtpPool


@pytest.fixture
def pools() -> Iterator[list[SmtpPool]]:
    """The pools a test made (see sending.pool_for), closed after it."""
    made: list[SmtpPool] = []
    yield made
    for pool in made:
        pool.close()
