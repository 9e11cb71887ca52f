"""Task names and queues: what a producer and a worker agree on, and all they share.

Task names are stable strings (producers publish by name, so nothing that
publishes imports ``tasks/``).
"""

from __future__ import annotations

from kombu.entity import Exchange

SEND_TASK = "mailpipe.send_notification"
# Several jobs of one profile in one message (notify_many): Celery's cost paid once.
BATCH_TASK = "mailpipe.send_batch"
REFRESH_TASK = "mailpipe.refresh_expiring_tokens"
REQUEUE_TASK = "mailpipe.requeue_stale_jobs"
# A profile check the console asked for (its id only; the record is in Redis).
CHECK_TASK = "mailpipe.check_profile"
# POST one of a job's events to its callback_url (worker.delivery.callbacks).
CALLBACK_TASK = "mailpipe.send_callback"
# Read every opted-in profile's bounce mailbox (beat, MAILPIPE_BOUNCE_POLL_SECONDS).
BOUNCES_TASK = "mailpipe.read_bounces"
QUEUE = "mail"
CRITICAL_QUEUE = "mail.critical"  # incident pages never wait behind a bulk digest
EXCHANGE = Exchange("mailpipe", type="direct")


def queue_of(priority: str) -> str:
    return CRITICAL_QUEUE if priority == "high" else QUEUE
