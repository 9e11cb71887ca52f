"""The verdicts on a job, as pure functions: no worker, no store, no server.

What an attempt's outcome means for the job (``next_step``): done, failed,
retried when, or moved to a fallback profile (``fallback_reason``, ``route``);
then what is written, counted and logged for it (``judge``, ``Judged.announce``,
``record`` with a store and metrics that only take notes).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from worker.delivery.decide import (
    Decision,
    Judged,
    NotNow,
    Route,
    fallback_reason,
    judge,
    later,
    next_step,
    not_tried,
    out_of_sends,
    over_limits,
    record,
    route,
)
from worker.metrics import Samples
from worker.settings import Settings
from worker.store import AttemptRecord, Job, NextStep
from worker.transport import Outcome, RecipientResult, SendResult

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
    assert later(SETTINGS, limit, reason="r") == Decision("retry", limit, "r")
    assert later(SETTINGS, limit + 0.5, reason="r") == Decision("wait", limit + 0.5, "r")


def test_a_plain_retry_sends_to_every_recipient_again() -> None:
    later, _ = step(result("transient", "mail", 451))
    assert later.pending is None  # None: all of them; () would be none


def test_no_retry_delay_has_a_floor_of_its_own() -> None:
    quick = Settings(_env_file=None, retry_base_seconds=0.5)  # type: ignore[call-arg]
    for attempt in (1, 1, 1, 2):
        later, delay = next_step(
            quick, result("transient", "mail", 451), attempt, NOW, partly_sent=False
        )
        assert 0.0 <= delay <= 0.5 * attempt
        assert later.next_attempt_at == NOW + timedelta(seconds=delay)


def test_a_retry_delay_is_capped_by_the_longest_backoff() -> None:
    for _ in range(5):
        _, delay = step(result("transient", "mail", 451), 4)  # 30 s * 2^3 = 240 s at most
        assert 0.0 <= delay <= 240.0
    capped = Settings(_env_file=None, retry_max_seconds=45, retry_max_attempts=20)  # type: ignore[call-arg]
    for _ in range(5):
        _, delay = next_step(capped, result("transient", "mail", 451), 12, NOW, partly_sent=False)
        assert 0.0 <= delay <= 45.0


def test_a_retry_after_sets_the_delay_when_the_backoff_is_shorter() -> None:
    quick = Settings(_env_file=None, retry_base_seconds=0.5)  # type: ignore[call-arg]
    token = result("transient", "token", retry_after_seconds=60.0)
    later, delay = next_step(quick, token, 1, NOW, partly_sent=False)
    assert delay == 60.0
    assert later.next_attempt_at == NOW + timedelta(seconds=60)


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


def test_transient_errors_long_enough_move_the_job_to_the_fallback() -> None:
    way = Route(None, NOW - timedelta(seconds=SETTINGS.fallback_after_seconds), "b")
    moved, delay = step(result("transient", "mail", 451), 2, way=way)
    assert (moved.status, moved.via, moved.via_since, delay) == ("queued", "b", NOW, 0.0)
    assert moved.pending is None
    recent = Route(None, NOW - timedelta(seconds=1), "b")
    stay, _ = step(result("transient", "mail", 451), 2, way=recent)
    assert (stay.status, stay.via) == ("queued", None)


def test_the_end_of_a_job_on_a_fallback_keeps_the_fallback_and_since_when() -> None:
    since = NOW - timedelta(minutes=5)
    on_b = Route("b", since, None)
    done, _ = step(result("delivered", "data", 250), way=on_b)
    assert done == NextStep("delivered", None, (), "b", since)
    failed, _ = step(result("permanent", "mail", 550), way=on_b)
    assert failed == NextStep("failed", None, (), "b", since)
    later, delay = step(result("transient", "mail", 451), way=on_b)
    assert later == NextStep("queued", NOW + timedelta(seconds=delay), None, "b", since)


def test_a_job_stays_on_its_fallback_when_its_priority_no_longer_falls_back() -> None:
    moved = NOW + timedelta(seconds=5)
    assert route(
        job(priority="normal", via_profile="b", via_since=moved), ("b", "c"), SETTINGS
    ) == (Route("b", moved, None))
    assert route(job(priority="normal"), ("b",), SETTINGS) == Route(None, NOW, None)


def test_no_fallback_once_some_recipients_have_it() -> None:
    stay, _ = step(result("permanent", "token"), partly_sent=True, way=Route(None, NOW, "b"))
    assert stay.via is None and stay.status == "delivered"


# -- judge, announce, record: what is written, counted and logged ----------------------------

STARTED = NOW - timedelta(seconds=2)
CREATED = NOW - timedelta(minutes=10)
BUSY = result("transient", "mail", 451, text="4.3.0 busy")
SENT = result("delivered", "data", 250, text="2.0.0 ok")
DECIDE = "worker.delivery.decide"


def stored_job(**fields: Any) -> Job:
    values: dict[str, Any] = {
        "id": "j1",
        "claim_id": "c1",
        "profile": "alerts",
        "priority": "high",
        "attempt_count": 0,
        "retried_after": 0,
        "recipients": ["oncall@example.test"],
        "pending": None,
        "via_profile": None,
        "via_since": None,
        "callback_url": None,
        "created_at": CREATED,
    }
    return Job(**{**values, **fields})


def judged(outcome: Outcome, fallbacks: tuple[str, ...] = (), **fields: Any) -> Judged:
    sent = SendResult(outcome, reused_connection=True, token_source="redis", token_seconds=0.25)
    return judge(SETTINGS, stored_job(**fields), sent, "w1", STARTED, NOW, fallbacks)


def test_judge_writes_the_attempt_numbered_after_those_made() -> None:
    j = judged(SENT, attempt_count=2)
    assert (j.entry.job_id, j.entry.claim_id, j.entry.number) == ("j1", "c1", 3)
    assert j.entry.record == AttemptRecord(
        profile="alerts",
        started_at=STARTED,
        ended_at=NOW,
        worker="w1",
        outcome=SENT,
        token_source="redis",
        token_seconds=0.25,
        reused_connection=True,
    )
    # On its own profile since it was made.
    assert (j.entry.step, j.delay) == (NextStep("delivered", None, (), None, CREATED), 0.0)


def test_the_last_allowed_attempt_is_one_and_an_operators_retry_starts_a_new_budget() -> None:
    last = SETTINGS.retry_max_attempts
    assert judged(BUSY, attempt_count=last - 2).entry.step.status == "queued"
    assert judged(BUSY, attempt_count=last - 1).entry.step.status == "failed"
    again = judged(BUSY, attempt_count=last, retried_after=last)
    assert (again.entry.number, again.entry.step.status) == (last + 1, "queued")
    spent = judged(BUSY, attempt_count=2 * last - 1, retried_after=last)
    assert spent.entry.step.status == "failed"


def test_judge_gives_up_on_the_rest_of_a_partial_delivery_as_delivered() -> None:
    refused = result("permanent", "rcpt", 550)
    assert judged(refused, pending=["busy@x.test"]).entry.step.status == "delivered"
    assert judged(refused).entry.step.status == "failed"


def test_a_recipient_refused_for_good_is_tried_once_and_one_refused_for_now_again() -> None:
    mixed = result(
        "delivered", "data", 250,
        recipients=(rcpt("ok@x.test", True), rcpt("gone@x.test", False, "permanent")),
    )  # fmt: skip
    once = judged(mixed)
    assert (once.entry.number, once.entry.step.status, once.entry.step.pending) == (
        1,
        "delivered",
        (),
    )
    busy = result(
        "delivered", "data", 250,
        recipients=(
            rcpt("gone@x.test", False, "permanent"),
            rcpt("busy@x.test", False, "transient"),
        ),
    )  # fmt: skip
    again = judged(busy, attempt_count=1, pending=["gone@x.test", "busy@x.test"])
    assert (again.entry.number, again.entry.step.status) == (2, "queued")
    assert list(again.entry.step.pending or ()) == ["busy@x.test"]


def test_judge_records_the_attempt_under_the_fallback_it_went_through() -> None:
    since = NOW - timedelta(seconds=30)
    j = judged(BUSY, ("b", "c"), via_profile="b", via_since=since)
    assert j.entry.record.profile == "b"
    assert (j.entry.step.via, j.entry.step.via_since) == ("b", since)
    moved = judged(result("permanent", "token"), ("b", "c"))
    assert (moved.entry.step.via, moved.entry.step.via_since) == ("b", NOW)
    assert judged(result("permanent", "token")).entry.step.status == "failed"


def test_a_job_not_claimed_cannot_be_judged() -> None:
    with pytest.raises(AssertionError):
        judged(SENT, claim_id=None)


def test_a_delivery_is_done_counted_and_logged_as_info(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, DECIDE)
    samples = Samples()
    decision = judged(SENT, attempt_count=1).announce(SETTINGS, samples)
    assert decision == Decision("done", reason="delivered at data: 250 2.0.0 ok")
    labels = {"profile": "alerts"}
    assert samples.counts == [
        ("attempts", {"profile": "alerts", "outcome": "delivered"}, 1),
        ("jobs_delivered", labels, 1),
    ]
    assert samples.observations == [
        ("send_duration_seconds", labels, 2.0),
        ("enqueue_to_accepted_seconds", labels, 600.0),
    ]
    assert caplog.record_tuples == [
        (DECIDE, logging.INFO, "job j1 attempt 2: delivered at data: 250 2.0.0 ok")
    ]


def test_a_failure_is_done_counted_and_logged_as_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, DECIDE)
    samples = Samples()
    refused = result("permanent", "mail", 550, text="5.7.1 no")
    decision = judged(refused).announce(SETTINGS, samples)
    assert decision == Decision("done", reason="permanent at mail: 550 5.7.1 no")
    labels = {"profile": "alerts"}
    assert samples.counts == [
        ("attempts", {"profile": "alerts", "outcome": "permanent"}, 1),
        ("jobs_failed", labels, 1),
    ]
    assert samples.observations == [("send_duration_seconds", labels, 2.0)]
    assert caplog.record_tuples == [
        (DECIDE, logging.WARNING, "job j1 attempt 1: permanent at mail: 550 5.7.1 no")
    ]


def test_a_planned_retry_is_logged_as_info_and_waits_in_the_broker(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, DECIDE)
    samples = Samples()
    j = judged(BUSY)
    decision = j.announce(SETTINGS, samples)
    assert decision == Decision("retry", j.delay, "transient at mail: 451 4.3.0 busy")
    assert samples.counts == [("attempts", {"profile": "alerts", "outcome": "transient"}, 1)]
    assert samples.observations == [("send_duration_seconds", {"profile": "alerts"}, 2.0)]
    assert caplog.record_tuples == [
        (
            DECIDE,
            logging.INFO,
            f"job j1 attempt 1: transient at mail: 451 4.3.0 busy; retry in {j.delay:.0f}s",
        )
    ]


def test_a_retry_later_than_the_broker_holds_waits_in_the_database(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, DECIDE)
    throttled = result("transient", "token", retry_after_seconds=1200.0)
    decision = judged(throttled).announce(SETTINGS, Samples())
    assert decision == Decision("wait", 1200.0, "transient at token")
    assert caplog.messages == ["job j1 attempt 1: transient at token; retry in 1200s"]


def test_a_retry_of_some_recipients_says_how_many_are_left(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, DECIDE)
    busy = result(
        "delivered", "data", 250,
        recipients=(rcpt("ok@x.test", True), rcpt("busy@x.test", False, "transient")),
    )  # fmt: skip
    j = judged(busy)
    decision = j.announce(SETTINGS, Samples())
    assert decision == Decision("retry", j.delay, "delivered at data: 250")
    assert caplog.messages == [
        f"job j1 attempt 1: delivered at data: 250 (1 recipient(s) still to send);"
        f" retry in {j.delay:.0f}s"
    ]


def test_a_fallback_is_retried_at_once_counted_and_logged_as_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, DECIDE)
    samples = Samples()
    decision = judged(result("permanent", "token"), ("b", "c")).announce(SETTINGS, samples)
    assert decision == Decision("retry", 0.0, "falling back to profile b")
    assert samples.counts == [
        ("attempts", {"profile": "alerts", "outcome": "permanent"}, 1),
        ("fallbacks", {"profile": "alerts", "fallback": "b"}, 1),
    ]
    assert caplog.record_tuples == [
        (
            DECIDE,
            logging.WARNING,
            "job j1 attempt 1: permanent at token; profile alerts cannot deliver it,"
            " sending through b",
        )
    ]
    caplog.clear()
    since = NOW - timedelta(hours=1)
    on_b = judged(result("permanent", "token"), ("b", "c"), via_profile="b", via_since=since)
    on_b.announce(SETTINGS, Samples())
    assert caplog.messages == [
        "job j1 attempt 1: permanent at token; profile b cannot deliver it, sending through c"
    ]


class Notes:
    """A store and metrics that only take notes of what they are given."""

    def __init__(self) -> None:
        self.attempts: list[tuple[Any, ...]] = []
        self.samples: list[Samples] = []

    def record_attempt(self, *args: Any, **kwargs: Any) -> None:
        self.attempts.append((*args, kwargs))

    def record(self, samples: Samples) -> None:
        self.samples.append(samples)


def context(fallback: tuple[str, ...] | None) -> Any:
    notes = Notes()
    by_name = {} if fallback is None else {"alerts": SimpleNamespace(fallback=fallback)}
    return SimpleNamespace(
        settings=SETTINGS, store=notes, metrics=notes, profiles=SimpleNamespace(by_name=by_name)
    )


def test_record_writes_the_attempt_and_its_metrics_and_says_what_to_do() -> None:
    rt = context(("b",))
    job = stored_job()
    decision = record(rt, job, SendResult(result("permanent", "token")), "w1", STARTED, lambda: NOW)
    assert decision == Decision("retry", 0.0, "falling back to profile b")
    [(job_id, claim_id, entry, numbered)] = rt.store.attempts
    assert (job_id, claim_id, entry.profile, entry.worker) == ("j1", "c1", "alerts", "w1")
    assert (entry.started_at, entry.ended_at) == (STARTED, NOW)
    assert numbered == {"number": 1, "step": NextStep("queued", NOW, None, "b", NOW), "events": ()}
    [samples] = rt.metrics.samples
    assert ("fallbacks", {"profile": "alerts", "fallback": "b"}, 1) in samples.counts


def test_a_profile_gone_from_the_file_has_no_fallbacks() -> None:
    rt = context(None)
    decision = record(
        rt, stored_job(), SendResult(result("permanent", "token")), "w1", STARTED, lambda: NOW
    )
    assert decision == Decision("done", reason="permanent at token")
    [(_, _, _, numbered)] = rt.store.attempts
    assert numbered["step"] == NextStep("failed", None, (), None, CREATED)


def test_record_sends_a_long_retry_to_wait_in_the_database() -> None:
    rt = context(())
    throttled = SendResult(result("transient", "token", retry_after_seconds=1200.0))
    decision = record(rt, stored_job(), throttled, "w1", STARTED, lambda: NOW)
    assert decision == Decision("wait", 1200.0, "transient at token")
    [(_, _, _, numbered)] = rt.store.attempts
    assert numbered["step"] == NextStep(
        "queued", NOW + timedelta(seconds=1200), None, None, CREATED
    )


# -- the attempt's events and the callbacks they make ---------------------------------------


def test_an_attempt_makes_events_for_the_recipients_it_was_sent_to_through_its_profile() -> None:
    # A retry of a partial delivery goes to the pending recipients only, through a fallback.
    sent = result(
        "delivered", "data", 250, recipients=(rcpt("b@x.test", True), rcpt("c@x.test", True))
    )
    entry = judged(
        sent,
        ("b-profile",),
        recipients=["a@x.test", "b@x.test", "c@x.test"],
        pending=["b@x.test", "c@x.test"],
        via_profile="b-profile",
        via_since=CREATED,
    ).entry
    assert [(e.event, e.recipient) for e in entry.events] == [
        ("delivered", "b@x.test"),
        ("delivered", "c@x.test"),
    ]
    assert {(e.at, e.profile, e.job_id) for e in entry.events} == {(NOW, "b-profile", "j1")}


def test_the_callbacks_an_attempt_makes_go_with_the_decision_and_none_without_a_url() -> None:
    delivered = result("delivered", "data", 250, recipients=(rcpt("oncall@example.test", True),))
    with_url = judged(delivered, callback_url="https://incidents.example.test/hook")
    (event,) = with_url.entry.events
    decision = with_url.announce(SETTINGS, Samples())
    assert decision.action == "done"
    assert decision.callbacks == (event.callback_id,)
    without = judged(delivered)
    assert without.announce(SETTINGS, Samples()) == Decision("done", reason=delivered.summary())


# -- a claimed job's turn that ends without a send --------------------------------------------


def test_a_job_sent_as_often_as_its_attempts_allow_without_a_record_fails() -> None:
    # sends counts the send about to happen: 5 earlier sends, none recorded.
    assert out_of_sends(SETTINGS, job(sends=5, retried_after=0)) is None
    assert out_of_sends(SETTINGS, job(sends=6, retried_after=0)) == NotNow(
        "sent 5 times without a recorded outcome; giving up"
    )


def test_an_operators_retry_starts_a_new_budget_of_sends() -> None:
    assert out_of_sends(SETTINGS, job(sends=8, retried_after=5)) is None
    assert out_of_sends(SETTINGS, job(sends=11, retried_after=5)) is not None


def test_a_rate_limit_puts_the_job_back_in_line_and_a_message_too_big_for_a_day_fails() -> None:
    assert over_limits(0.0, "m365") is None
    assert over_limits(2.5, "m365") == NotNow("rate limit of profile m365", 2.5)
    assert over_limits(0.25, "m365") == NotNow("rate limit of profile m365", 0.25)
    never = over_limits(float("inf"), "m365")
    assert never == NotNow("the message has more recipients than profile m365 may send to a day")
    assert never.wait is None  # it fails: waiting would not help


def test_a_send_that_never_began_goes_back_in_line_for_the_slot_wait() -> None:
    settings = SETTINGS.model_copy(update={"smtp_slot_wait_seconds": 7.0})
    busy = SendResult(result("transient", "connect", text="all 3 connections busy"), busy=True)
    assert not_tried(settings, busy) == NotNow("all 3 connections busy", 7.0)
    tried = SendResult(result("transient", "connect", text="refused"))
    assert not_tried(settings, tried) is None
