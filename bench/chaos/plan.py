"""What a chaos run does (`Plan`), and the timings and mailpipe settings it runs with.

The settings shrink mailpipe's recovery from minutes to seconds so a run sees
every fault recovered from; the report quotes them, so they live in one place.
"""

from __future__ import annotations

from dataclasses import dataclass

TOKEN_LIFETIME_SECONDS = 20
BEAT_INTERVAL_SECONDS = 2.0
REDIS_DOWN_SECONDS = 3.0
# A duplicate is explained when its earlier copy reached the sink this long
# (or less) before a crash: the worker got the 250 but died before recording it.
CRASH_WINDOW_SECONDS = 5.0

# Recovery in seconds instead of minutes, keeping worker/celery.py's asserts:
# the longest countdown (12) and the task time limit (10) stay below the
# visibility timeout (30), and the time limit below the send lease (12).
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
    "send_lease_seconds": "12",
    # Longer than a job waits in the queue after the Redis restart: the sweeper
    # cannot tell a lost message from a slow one, and republishing a backlog
    # every few seconds only makes it longer.
    "requeue_grace_seconds": "20",
    # Beat runs mailpipe's schedule every few seconds instead of every minute.
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

    def is_bad(self, n: int) -> bool:
        """The permanently bad jobs, spread evenly over the run."""
        step = self.jobs // self.bad_jobs
        return n % step == step // 2 and n // step < self.bad_jobs
