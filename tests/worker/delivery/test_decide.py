"""The verdicts on a job, as pure functions: no worker, no store, no server.

What an attempt's outcome means for the job (``next_step``): done, failed,
retried when, or moved to a fallback profile (``fallback_reason``, ``route``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from worker.delivery.decide import Decision, Route, fallback_reason, next_step, route
from worker.settings import Settings
from worker.store import NextStep
from worker.transport import Outcome, RecipientResult

NOW = datetime(2026, 12, 7, 3, 0, tzinfo=UTC)
SETTINGS = Settings(
    _env_file=None,  # type: ignore[call-arg]
    retry_base_seconds=30,
    retry_max_seconds=3600,
    retry_max_attempts=5,
    broker_max_countdown_seconds=900,
)


def result(kind: str, phase: str, code: int | None = None, **extra: Any) -> Outcome:
    return Outcome(kind=kind, phase=phase, code=code, **extra)  # type: ignore[arg-type]


def rcpt(address: str, accepted: bool, kind: str = "delivered") -> RecipientResult:
    return RecipientResult(address=address, accepted=accepted, kind=kind)  # type: ignore[arg-type]


def step(
    outcome: Outcome, attempt: int = 1, *, partly_sent: bool = False, way: Route | None = None
) -> tuple[NextStep, float]:
    return next_step(SETTINGS, outcome, attempt, NOW, partly_sent=partly_sent, way=way)


# -- next_step without a fallback -------------------------------------------------------------


def test_delivered_is_done_with_nothing_pending() -> None:
    done, delay = step(result("delivered", "data", 250, recipients=(rcpt("a@x.test", True),)))
    assert (done.status, done.pending, delay) == ("delivered", (), 0.0)


def test_permanent_fails_at_once_and_is_never_retried() -> None:
    failed, delay = step(result("permanent", "mail", 550))
    assert (failed.status, failed.next_attempt_at, delay) == ("failed", None, 0.0)


def test_a_partial_delivery_given_up_is_delivered_not_failed() -> None:
    done, _ = step(result("permanent", "rcpt", 550), partly_sent=True)
    assert done.status == "delivered"


@pytest.mark.parametrize("kind", ["transient", "auth_rejected"])
def test_transient_and_auth_rejected_are_retried_within_the_backoff(kind: str) -> None:
    for attempt in range(1, 5):
        later, delay = step(result(kind, "mail", 451), attempt)
        ceiling = min(SETTINGS.retry_max_seconds, 30 * 2 ** (attempt - 1))
        assert later.status == "queued"
        assert 0.0 <= delay <= ceiling  # full jitter: never above the ceiling
        assert later.next_attempt_at == NOW + timedelta(seconds=delay)


def test_the_last_attempt_fails_a_transient_error() -> None:
    last, _ = step(result("transient", "mail", 451), SETTINGS.retry_max_attempts)
    assert last.status == "failed"
    one_before, _ = step(result("transient", "mail", 451), SETTINGS.retry_max_attempts - 1)
    assert one_before.status == "queued"


def test_a_retry_after_is_a_floor_not_a_ceiling() -> None:
    later, delay = step(result("transient", "token", retry_after_seconds=120.0))
    assert delay >= 120.0
    assert later.next_attempt_at == NOW + timedelta(seconds=delay)


def test_recipients_refused_for_now_are_retried_alone_and_for_good_ones_are_not() -> None:
    mixed = result(
        "delivered", "data", 250,
        recipients=(
            rcpt("ok@x.test", True),
            rcpt("busy@x.test", False, "transient"),
            rcpt("gone@x.test", False, "permanent"),
        ),
    )  # fmt: skip
    later, _ = step(mixed)
    assert later.status == "queued"
    assert list(later.pending or ()) == ["busy@x.test"]  # never the one refused for good
    done, _ = step(mixed, SETTINGS.retry_max_attempts)
    assert (done.status, done.pending) == ("delivered", ())


def test_only_permanent_refusals_end_the_job_at_once() -> None:
    refused = result(
        "delivered", "data", 250,
        recipients=(rcpt("ok@x.test", True), rcpt("gone@x.test", False, "permanent")),
    )  # fmt: skip
    done, delay = step(refused)
    assert (done.status, delay) == ("delivered", 0.0)


def test_a_delay_the_broker_should_not_hold_waits_in_the_database() -> None:
    limit = SETTINGS.broker_max_countdown_seconds
    assert Decision.later(SETTINGS, limit, reason="r").action == "retry"
    assert Decision.later(SETTINGS, limit + 0.001, reason="r").action == "wait"


# -- fallback -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("outcome", "why"),
    [
        (result("permanent", "token"), "its credentials were refused"),  # invalid_client
        (result("permanent", "auth", 535), "its credentials were refused"),  # 5.7.30, 5.7.139
        (result("auth_rejected", "auth", 535), "its credentials were refused"),
        (result("permanent", "tls"), "TLS with its server failed"),  # untrusted certificate
        (result("transient", "connect"), "its server cannot be reached"),
    ],
)
def test_what_makes_a_profile_unable_to_deliver_at_once(outcome: Outcome, why: str) -> None:
    assert fallback_reason(outcome, NOW, NOW, 60.0) == why


def test_transient_errors_make_it_unable_only_after_the_set_time() -> None:
    busy = result("transient", "mail", 451)
    assert fallback_reason(busy, NOW - timedelta(seconds=59.9), NOW, 60.0) is None
    assert fallback_reason(busy, NOW - timedelta(seconds=60), NOW, 60.0) is not None


@pytest.mark.parametrize(
    "outcome",
    [
        result("transient", "data", None),  # lost after the data: the server may have it
        result("permanent", "rcpt", 550),  # a refusal that names the recipient
        result("transient", "rcpt", 450),
        result("permanent", "data", 554),  # the content refused
        result("permanent", "mail", 550),
        result("delivered", "data", 250),
        result("transient", "auth", 454, recipients=(rcpt("a@x.test", True),)),
    ],
)
def test_never_after_the_server_may_have_it_nor_for_a_refused_recipient(outcome: Outcome) -> None:
    long_ago = NOW - timedelta(hours=1)
    assert fallback_reason(outcome, long_ago, NOW, 60.0) is None


def job(**fields: Any) -> Any:
    values = {"priority": "high", "via_profile": None, "via_since": None, "created_at": NOW}
    return SimpleNamespace(**{**values, **fields})


def test_the_route_walks_the_fallback_list_in_order_and_only_for_its_priorities() -> None:
    chain = ("b", "c")
    assert route(job(), chain, SETTINGS) == Route(None, NOW, "b")
    moved = NOW + timedelta(seconds=5)
    assert route(job(via_profile="b", via_since=moved), chain, SETTINGS) == Route("b", moved, "c")
    assert route(job(via_profile="c", via_since=moved), chain, SETTINGS).next is None
    assert route(job(priority="normal"), chain, SETTINGS).next is None
    both = Settings(_env_file=None, fallback_priorities="normal, high")  # type: ignore[call-arg]
    assert route(job(priority="normal"), chain, both).next == "b"


def test_a_fallback_is_taken_at_once_and_then_the_job_stays_on_it() -> None:
    way = Route(None, NOW, "b")
    moved, delay = step(result("permanent", "token"), way=way)
    assert (moved.status, moved.via, moved.via_since, delay) == ("queued", "b", NOW, 0.0)
    assert moved.next_attempt_at == NOW
    # On the fallback, a transient error is retried there, not given up for the primary.
    on_b = Route("b", NOW, None)
    again, _ = step(result("transient", "mail", 451), 2, way=on_b)
    assert (again.status, again.via, again.via_since) == ("queued", "b", NOW)


def test_no_fallback_once_some_recipients_have_it() -> None:
    stay, _ = step(result("permanent", "token"), partly_sent=True, way=Route(None, NOW, "b"))
    assert stay.via is None and stay.status == "delivered"
