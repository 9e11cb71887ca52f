"""Each profile's health without sending: ``mailpipe profiles status`` and ``GET /v1/profiles``.

Read from what every process records (the last token refresh, in Redis) and
from the store (when a delegated refresh token last rotated), so a producer
without any secret can show it. ``healthy`` is whether the last token refresh
worked; None until one ran (beat refreshes every OAuth profile within its
interval) and for password profiles, which have no token to check.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from worker.credentials import Profile
from worker.credentials.health import TokenHealth
from worker.queue import Producer
from worker.store import last_rotation


def profile_status(rt: Producer, profile: Profile, now: datetime | None = None) -> dict[str, Any]:
    now = now or datetime.now(UTC)
    oauth = profile.oauth
    status: dict[str, Any] = {
        "profile": profile.name,
        "provider": profile.provider,
        "auth": f"oauth/{oauth.grant}" if oauth else "password",
        "healthy": None,
        "token": None,
        "last_refresh": None,
        "refresh_token": None,
    }
    if oauth is None:
        return status
    last = TokenHealth(rt.redis, rt.metrics).last(profile.name)
    if last is not None:
        status["healthy"] = last.ok
        status["last_refresh"] = {
            "at": _when(last.at),
            "ok": last.ok,
            "error": last.error,
            "text": last.text or None,
            "hint": last.hint,
        }
        expires = last.expires_at if last.ok else None
        state = "valid" if expires and expires > now else "none"
        status["token"] = {"state": state, "expires_at": _when(expires) if expires else None}
    if oauth.grant == "refresh_token":
        status["refresh_token"] = _refresh_token(rt, profile.name, now)
    return status


def _refresh_token(rt: Producer, name: str, now: datetime) -> dict[str, Any]:
    rotated = last_rotation(rt.store, name)
    limit = rt.settings.refresh_token_idle_limit_days
    if rotated is None:
        return {
            "source": "the profiles file's seed, or none yet",
            "last_rotation": None,
            "idle_days_left": None,
            "hint": f"mailpipe oauth status {name} tells which; mailpipe oauth authorize {name} "
            "signs in",
        }
    idle_days = (now - rotated).total_seconds() / 86400
    return {
        "source": "stored (signed in, or rotated since)",
        "last_rotation": _when(rotated),
        "idle_days_left": round(max(limit - idle_days, 0.0), 1),
        "hint": None,
    }


def status_lines(status: dict[str, Any]) -> list[str]:
    """What ``mailpipe profiles status`` prints for one profile."""
    healthy = {True: "healthy", False: "UNHEALTHY", None: "unknown"}[status["healthy"]]
    if status["auth"] == "password":
        healthy = "no token (password)"
    lines = [f"{status['profile']}: {healthy}  ({status['provider']}, {status['auth']})"]
    token = status["token"]
    if token:
        lines.append(f"  token          {token['state']}, expires {token['expires_at'] or '-'}")
    last = status["last_refresh"]
    if last:
        outcome = "ok" if last["ok"] else f"FAILED: {last['error']}: {last['text']}"
        lines.append(f"  last refresh   {last['at']} {outcome}")
        if last["hint"] and not last["ok"]:
            lines.append(f"                 hint: {last['hint']}")
    elif status["auth"] != "password":
        lines.append("  last refresh   none yet (beat refreshes every OAuth profile)")
    refresh = status["refresh_token"]
    if refresh:
        lines.append(f"  refresh token  {refresh['source']}")
        if refresh["last_rotation"]:
            lines.append(
                f"                 last rotated {refresh['last_rotation']}, "
                f"{refresh['idle_days_left']} days left before the IdP's idle limit"
            )
        elif refresh["hint"]:
            lines.append(f"                 {refresh['hint']}")
    return lines


def _when(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
