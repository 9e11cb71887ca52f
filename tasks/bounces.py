"""The bounce reader (beat): every opted-in profile's mailbox, one reader per mailbox."""

from __future__ import annotations

import logging

from worker import redis_keys
from worker.bounces.reader import mailbox_key, read_bounces
from worker.errors import MailpipeError
from worker.intake import publish_callbacks
from worker.queue import BOUNCES_TASK, app
from worker.redis_adapter import Lock
from worker.runtime import get_runtime

log = logging.getLogger(__name__)


@app.task(name=BOUNCES_TASK)
def read_bounce_mailboxes() -> int:
    """Read each ``[profiles.NAME.bounces]`` mailbox that no other worker is reading.

    A mailbox that cannot be read is logged (one line, no content) and tried
    at the next poll; the others are read regardless. Returns the events made.
    """
    rt = get_runtime()
    made = 0
    for profile in rt.profiles_file.current():
        if profile.bounces is None:
            continue
        key = redis_keys.bounce_reader(mailbox_key(profile))
        try:
            with Lock(rt.redis, key, rt.settings.bounce_lock_seconds) as held:
                if not held:
                    continue
                result = read_bounces(rt, profile)
        except MailpipeError as exc:
            log.warning("bounce mailbox of %s not read: %s", profile.name, exc)
            continue
        publish_callbacks(rt, result.callbacks)
        made += len(result.events)
    return made
