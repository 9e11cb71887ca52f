"""What SMTP and Graph do alike around a send: wait for a slot, and one fresh token after a
refusal.

A mailbox allows only so many connections (SMTP) or requests in flight
(Graph), counted across every worker by ``ConnectionSlots``: a send waits a
little for one, then gives up as busy (nothing tried). A server that refuses
a token (535, 401) may have seen it revoked or expired early: the token is
dropped in every process and one fresh token is tried at once; a refused
password is never retried (repeated wrong passwords lock accounts).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

from providers import PasswordCredentials
from worker.credentials import Credentials, Profile, SmtpCredentials
from worker.transport.errors import ConnectionsBusy
from worker.transport.slots import ConnectionSlots, try_lease

log = logging.getLogger(__name__)

T = TypeVar("T")


def wait_for_slot(
    slots: ConnectionSlots | None,
    profile: Profile,
    *,
    wait_seconds: float,
    busy: str,
    sleep: Callable[[float], None] = time.sleep,
    idle: Callable[[], T | None] | None = None,
) -> tuple[T | None, str | None]:
    """(an idle connection, None) or (None, a lease on a free slot), whichever comes first.

    ``idle`` hands back one of this process's own connections (it holds a
    slot already); without a cap the lease is None. After ``wait_seconds``,
    ``ConnectionsBusy`` with ``busy`` as its text.
    """
    give_up_at = time.monotonic() + wait_seconds
    while True:
        reused = idle() if idle else None
        if reused is not None:
            return reused, None
        allowed, lease = try_lease(slots, profile)
        if allowed:
            return None, lease
        if time.monotonic() >= give_up_at:
            raise ConnectionsBusy("connect", busy)
        sleep(random.uniform(0.02, 0.1))  # noqa: S311 (jitter)


def with_fresh_token(
    credentials: Credentials,
    profile: Profile,
    use: Callable[[SmtpCredentials], T],
    refused: Callable[[T], str | None],
) -> tuple[T, SmtpCredentials, float]:
    """``use(credentials)``; if ``refused`` finds the token refused (and why), once more with a
    fresh one. Returns the last result, the credentials it used, and how long getting them
    took.
    """
    given, seconds = _timed(credentials, profile, force=False)
    result = use(given)
    why = refused(result)
    if why is None or isinstance(given, PasswordCredentials):
        return result, given, seconds
    log.warning("profile %s: %s; retrying with a fresh token", profile.name, why)
    credentials.invalidate(profile.name, given)
    given, seconds = _timed(credentials, profile, force=True)
    return use(given), given, seconds


def _timed(
    credentials: Credentials, profile: Profile, *, force: bool
) -> tuple[SmtpCredentials, float]:
    started = time.monotonic()
    given = credentials.get(profile, force=force)
    return given, time.monotonic() - started
