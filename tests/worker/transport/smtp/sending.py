"""Sending through an SmtpPool in the tests: a pool the `pools` fixture closes, an alert mail."""

from __future__ import annotations

from worker.credentials import Credentials
from worker.intake import Notification, build_message
from worker.transport import OutgoingMessage, SendResult
from worker.transport.smtp import SmtpPool


def pool_for(credentials: Credentials, pools: list[SmtpPool], **options: object) -> SmtpPool:
    pool = SmtpPool(credentials, **options)  # type: ignore[arg-type]
    pools.append(pool)
    return pool


def message(n: int = 1, **fields: object) -> OutgoingMessage:
    values: dict[str, object] = {
        "to": ("oncall@example.test",),
        "subject": f"[P1] incident {n}",
        "text": "db-01 is down",
    }
    from_name = str(fields.pop("from_name", "Example Alerts"))
    values.update(fields)
    return build_message(
        Notification(**values),  # type: ignore[arg-type]
        job_id=f"job-{n}",
        from_email="alerts@example.test",
        from_name=from_name,
    )


def send(pool: SmtpPool, n: int = 1, **fields: object) -> SendResult:
    return pool.send(pool.credentials.profiles.get("p"), message(n, **fields))
