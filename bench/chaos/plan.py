"""What a chaos run does (`Plan`), and the timings and mailpipe settings it runs with.

The report quotes these numbers, so they live in one place. Recovery from a
dead worker uses mailpipe's own defaults (the send lease and the sweep), so
the recovery times a run reports are the ones users get.
"""

from __future__ import annotations

from dataclasses import dataclass

from worker.settings import DEFAULTS

TOKEN_LIFETIME_SECONDS = 20
BEAT_INTERVAL_SECONDS = 2.0
REDIS_DOWN_SECONDS = 3.0
# mailpipe's defaults, not overridden: a dead worker's job is due again when its
# lease ends (renewed every third of it), and the next sweep republishes it.
SEND_LEASE_SECONDS = DEFAULTS.send_lease_seconds
SWEEP_INTERVAL_SECONDS = DEFAULTS.sweep_interval_seconds
# Every job a killed worker held must be back (accepted by the sink, or its
# attempt recorded by another worker) this soon after the kill: a lease and a
# sweep, plus the send.
RECOVERY_TARGET_SECONDS = 30.0
# The documented duplicate window is now only the time between the server's
# final 250 reaching the worker and the worker's one Redis write that marks the
# send as accepted (worker/delivery/sent_marks.py). A copy counts as explained
# when a crash falls between its arrival at the sink and its 250 plus this much.
MARK_WINDOW_SECONDS = 1.0
# The kill at DATA: the sink holds one message's final reply at most this long
# (below smtp_timeout_seconds, so the client never times out on it) while the
# harness kills the worker that sent it.
DATA_HOLD_SECONDS = 4.0

# Faster than mailpipe's defaults where a run would otherwise wait minutes, keeping
# worker/settings.py's cross-checks: the longest countdown (12) and the task time limit
# (10) stay below the visibility timeout (30), the time limit below send_max_seconds
# (330, the default), and the send lease and the sweep are mailpipe's own.
RECOVERY_SETTINGS = {
    # Tokens live 20 s and count as expired 5 s early; beat pre-refreshes those
    # ending within 5 + 5 s. So the token endpoint is asked all through the run
    # and its 503s and 429s meet real requests, not just the first one.
    "token_skew_seconds": "5",
    "token_refresh_window_seconds": "5",
    # A token request (its retries, a waited-out Retry-After) ends well inside a
    # task's soft time limit.
    "token_deadline_seconds": "6",
    "token_retry_after_max_seconds": "3",
    "token_wait_seconds": "5",
    "retry_base_seconds": "1",
    "retry_max_seconds": "10",
    "broker_max_countdown_seconds": "12",
    "visibility_timeout_seconds": "30",
    "task_soft_time_limit_seconds": "8",
    "task_time_limit_seconds": "10",
    # Longer than a job waits in the queue after the Redis restart: the sweeper
    # cannot tell a lost message from a slow one, and republishing a backlog
    # every few seconds only makes it longer.
    "requeue_grace_seconds": "20",
    # Beat pre-refreshes tokens every few seconds instead of every minute (the
    # stale-job sweep keeps its own interval, mailpipe's default).
    "beat_interval_seconds": str(BEAT_INTERVAL_SECONDS),
    "smtp_timeout_seconds": "5",
    # A new connection, so a token look-up and an AUTH, every 20 messages.
    "smtp_max_messages_per_connection": "20",
}


@dataclass(frozen=True)
class Plan:
    jobs: int
    profiles: int
    rate_per_second: float
    bad_jobs: int
    seed: int
    final_wait_seconds: float
    db_outage_seconds: float

    def is_bad(self, n: int) -> bool:
        """The permanently bad jobs, spread evenly over the run."""
        step = self.jobs // self.bad_jobs
        return n % step == step // 2 and n // step < self.bad_jobs
