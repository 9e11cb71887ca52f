"""Token pre-refresh (beat): an optimisation; workers refresh on demand anyway."""

from __future__ import annotations

import logging
from datetime import timedelta

from providers import RefreshTokenGrant
from tasks.jobs import beat_lock
from worker.celery import REFRESH_TASK, app
from worker.errors import MailpipeError
from worker.runtime import get_runtime
from worker.store import utcnow

log = logging.getLogger(__name__)


@app.task(name=REFRESH_TASK)
def refresh_expiring_tokens() -> int:
    """Refresh cached tokens about to expire, and delegated refresh tokens left idle.

    A token is refreshed when it ends within skew + window; a delegated profile
    whose refresh token has not rotated for ``refresh_token_idle_days`` (or
    never did) is refreshed so Microsoft's 90-day inactivity expiry never hits.
    Other profiles without a cached token are idle and left alone.
    """
    rt = get_runtime()
    settings = rt.settings
    refreshed = 0
    with beat_lock(rt, "refresh", settings.beat_interval_seconds) as held:
        if not held:
            return 0
        within = settings.token_skew_seconds + settings.token_refresh_window_seconds
        idle_since = utcnow() - timedelta(days=settings.refresh_token_idle_days)
        for profile in rt.profiles:
            if profile.oauth is None:
                continue
            try:
                grant = rt.credentials.grant(profile.name)
                expiring = rt.credentials.cache.expires_within(grant, within)
                # A seed that never rotated is kept alive too: unused, it would
                # expire after the provider's idle limit (Microsoft: 90 days).
                rotated = rt.refresh_tokens.last_rotation(profile.name)
                idle = isinstance(grant, RefreshTokenGrant) and (
                    rotated is None or rotated < idle_since
                )
                if expiring or idle:
                    rt.credentials.cache.get(grant, force=True)
                    refreshed += 1
            except MailpipeError as exc:
                # One profile's trouble must not stop the others' pre-refresh.
                log.warning("pre-refresh of profile %s failed: %s", profile.name, exc)
    return refreshed
