"""Token pre-refresh (beat): every OAuth profile's token kept warm, sends or not.

Workers refresh on demand anyway; beat makes sure that the first page after a
quiet weekend pays no token request, and that a broken credential (an expired
secret, a revoked refresh token) shows in ``mailpipe profiles status`` and the
metrics within one beat interval instead of at the first page.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from providers import RefreshTokenGrant
from tasks.jobs import beat_lock
from worker.errors import MailpipeError
from worker.queue import REFRESH_TASK, app
from worker.runtime import get_runtime
from worker.store import utcnow

log = logging.getLogger(__name__)


@app.task(name=REFRESH_TASK)
def refresh_expiring_tokens() -> int:
    """Fetch every OAuth profile's token that is missing or ends within skew + window.

    A delegated profile whose refresh token has not rotated for
    ``refresh_token_idle_days`` (or never did) is refreshed too, so the IdP's
    inactivity limit (Microsoft: 90 days) never hits. Each refresh, ok or not,
    is recorded as the profile's token health.
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
                grant = rt.credentials.grant(profile)
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
