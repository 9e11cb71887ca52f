"""Fixtures of the transport tests."""

from __future__ import annotations

import pytest
import redis

from worker.transport.slots import ConnectionSlots


@pytest.fixture
def slots(redis_client: redis.Redis) -> ConnectionSlots:
    """The connection slots every worker shares, on the test's own Redis."""
    return ConnectionSlots(redis_client, lease_seconds=30)
