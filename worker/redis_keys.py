"""Every Redis key and channel mailpipe uses, in one place.

Keys are namespaced ``mailpipe:<kind>:<profile>…`` so that a shared Redis can
be inspected (and cleaned) by prefix.
"""

PREFIX = "mailpipe"


def token(profile: str, fingerprint: str) -> str:
    """Encrypted cached access token; the fingerprint changes with the credentials."""
    return f"{PREFIX}:token:{profile}:{fingerprint}"


def token_lock(profile: str) -> str:
    """Single-flight lock: whoever holds it is refreshing this profile's token."""
    return f"{PREFIX}:lock:token:{profile}"


# Pub/sub channel: a profile name published here drops every process's
# in-memory copy of that profile's token.
TOKEN_INVALIDATED_CHANNEL = f"{PREFIX}:token_invalidated"


def token_health(profile: str) -> str:
    """Hash: the profile's last token refresh (when, ok or the error and its hint)."""
    return f"{PREFIX}:token_health:{profile}"


def smtp_slots(profile: str) -> str:
    """Sorted set of connection leases (member = lease id, score = expiry in ms)."""
    return f"{PREFIX}:smtp_slots:{profile}"


def rate(profile: str, limit: str) -> str:
    """Hash of time bucket → count, for one of a profile's sending limits."""
    return f"{PREFIX}:rate:{profile}:{limit}"


def metric(name: str) -> str:
    """Hash of one metric's values by label set (worker.metrics), shared by every process."""
    return f"{PREFIX}:metrics:{name}"


def sent_mark(job_id: str, send: int) -> str:
    """A send's outcome after the server accepted it, kept until it is recorded."""
    return f"{PREFIX}:sent:{job_id}:{send}"


def smtp_grouping_off(host: str, port: int) -> str:
    """Set once a server lost a connection after a grouped message's content: no more groups."""
    return f"{PREFIX}:smtp_grouping_off:{host}:{port}"


def api_batch_window(api_key: str, minute: int) -> str:
    """Batch messages one API key queued in one minute (``faces.http.batch_rate``)."""
    return f"{PREFIX}:api_batch:{api_key}:{minute}"


def beat_lock(task: str) -> str:
    """Held while a periodic task runs, so a second beat does not double the work."""
    return f"{PREFIX}:lock:beat:{task}"


def profile_check(check_id: str) -> str:
    """A profile check started in the console: its steps so far, kept for a day."""
    return f"{PREFIX}:profile_check:{check_id}"


def bounce_reader(mailbox: str) -> str:
    """Held by the one worker reading a bounce mailbox (``bounces.reader.mailbox_key``)."""
    return f"{PREFIX}:bounces:{mailbox}"
