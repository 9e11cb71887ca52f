"""Which events an attempt settles (``delivery.events.settled``): pure, no store."""

from __future__ import annotations

from datetime import UTC, datetime

from worker.delivery.events import settled
from worker.store import Job, NextStep
from worker.transport import Outcome, RecipientResult

AT = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
TO = ("a@example.test", "b@example.test")


def job(callback_url: str | None = None) -> Job:
    return Job(id="j1", profile="alerts", recipients=list(TO), callback_url=callback_url)


def accepted(address: str) -> RecipientResult:
    return RecipientResult(address, True, 250, "2.1.5", "OK")


def refused(address: str, code: int, kind: str) -> RecipientResult:
    enhanced = f"{str(code)[0]}.1.1"
    return RecipientResult(address, False, code, enhanced, "refused", kind)  # type: ignore[arg-type]


def delivered(*recipients: RecipientResult) -> Outcome:
    return Outcome("delivered", "data", 250, "2.0.0", "queued", recipients=recipients)


def test_every_accepted_recipient_of_a_delivered_message_is_delivered() -> None:
    events = settled(job(), TO, delivered(*map(accepted, TO)), NextStep("delivered"), AT, "alerts")
    assert [(e.event, e.recipient, e.smtp_code) for e in events] == [
        ("delivered", "a@example.test", 250),
        ("delivered", "b@example.test", 250),
    ]


def test_a_recipient_refused_for_good_fails_at_once_while_the_other_waits() -> None:
    result = delivered(refused("a@example.test", 550, "permanent"),
                       refused("b@example.test", 451, "transient"))  # fmt: skip
    events = settled(job(), TO, result, NextStep("queued"), AT, "alerts")
    assert [(e.event, e.recipient, e.smtp_code, e.enhanced_code) for e in events] == [
        ("failed", "a@example.test", 550, "5.1.1")
    ]


def test_a_job_that_ends_failed_fails_every_recipient_not_settled() -> None:
    result = Outcome("permanent", "mail", 550, "5.7.60", "SendAsDenied")
    events = settled(job(), TO, result, NextStep("failed"), AT, "alerts")
    assert [(e.event, e.smtp_code, e.text) for e in events] == [
        ("failed", 550, "SendAsDenied"),
        ("failed", 550, "SendAsDenied"),
    ]


def test_a_transient_failure_with_attempts_left_settles_nothing() -> None:
    result = Outcome("transient", "connect", None, None, "connection refused")
    assert settled(job(), TO, result, NextStep("queued"), AT, "alerts") == ()


def test_a_callback_is_made_only_for_a_job_with_a_callback_url() -> None:
    result = delivered(accepted("a@example.test"))
    (without,) = settled(job(), TO[:1], result, NextStep("delivered"), AT, "alerts")
    (with_url,) = settled(job("https://hooks.example.test/x"), TO[:1], result,
                          NextStep("delivered"), AT, "alerts")  # fmt: skip
    assert without.callback is None
    assert with_url.callback == with_url.callback_id
