"""Callbacks end to end: a real worker POSTs each event, signed, to a real receiver."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import httpx
import pytest

from tests.fakes.callback_receiver import Receiver
from tests.pipeline import CALLBACK_SECRET, Pipeline
from worker.delivery.callback_transport import CallbackTransport
from worker.delivery.callbacks import post_callback
from worker.faces.reports import job_dict
from worker.intake import InvalidMessageError, notify, notify_many
from worker.metrics import Metrics
from worker.settings import Settings
from worker.store import EventEntry, Store, utcnow
from worker.store.console import JobQuery


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver(CALLBACK_SECRET)
    yield made
    made.close()


def callback_outcomes(pipeline: Pipeline) -> dict[str, int]:
    """mailpipe_callbacks_total by outcome, as the fleet's metrics hold it."""
    counts = pipeline.runtime.metrics.counter("callbacks")
    return {dict(labels)["outcome"]: count for labels, count in counts.items()}


def callbacks_settled(pipeline: Pipeline, job_id: str, count: int) -> bool:
    """The job has ``count`` events and none of their callbacks is still pending."""
    events = pipeline.runtime.store.events_of(job_id)
    states = [e.callback.status for e in events if e.callback is not None]  # type: ignore[attr-defined]
    return len(states) == count and "pending" not in states


def test_each_event_reaches_the_receiver_once_signed(
    pipeline: Pipeline, receiver: Receiver
) -> None:
    pipeline.server.fail_recipient("gone@example.test", "550 5.1.1 User unknown")
    pipeline.start_worker()
    job_id = notify(
        "alerts", to=["oncall@example.test", "gone@example.test"], subject="[P1] db-01 down",
        text="Disk full", callback_url=receiver.url, runtime=pipeline.runtime,
    )  # fmt: skip
    pipeline.wait_final(job_id)
    pipeline.wait_for(lambda: callbacks_settled(pipeline, job_id, 2))
    assert receiver.forged == []
    taken = sorted(receiver.taken(), key=lambda e: e["event"])
    assert [(e["event"], e["recipient"]) for e in taken] == [
        ("delivered", "oncall@example.test"),
        ("failed", "gone@example.test"),
    ]
    assert receiver.statuses() == [200, 200]  # each once
    delivered, failed = taken
    assert delivered["job_id"] == failed["job_id"] == job_id
    assert delivered["profile"] == "alerts"
    assert (delivered["smtp_code"], failed["smtp_code"]) == (250, 550)
    assert failed["enhanced_code"] == "5.1.1"
    assert set(delivered) == {
        "event", "job_id", "profile", "recipient", "at", "smtp_code", "enhanced_code", "text"
    }  # fmt: skip
    # The job's record lists its events and each one's callback.
    job = pipeline.runtime.store.get_job(job_id)
    assert job is not None
    shown = job_dict(job, pipeline.runtime.store.events_of(job_id))
    assert sorted((e["event"], e["callback"]["status"]) for e in shown["events"]) == [
        ("delivered", "delivered"),
        ("failed", "delivered"),
    ]


def test_a_receiver_that_fails_twice_gets_the_event_after_backoff(
    pipeline: Pipeline, receiver: Receiver
) -> None:
    receiver.answers = [500, 503]
    before = callback_outcomes(pipeline)
    pipeline.start_worker()
    job_id = notify(
        "alerts", to=["oncall@example.test"], subject="[P1] db-01 down", text="Disk full",
        callback_url=receiver.url, runtime=pipeline.runtime,
    )  # fmt: skip
    pipeline.wait_final(job_id)
    pipeline.wait_for(lambda: callbacks_settled(pipeline, job_id, 1))
    assert receiver.statuses() == [500, 503, 200]
    assert [e["event"] for e in receiver.taken()] == ["delivered"]
    (event,) = pipeline.runtime.store.events_of(job_id)
    callback = event.callback  # type: ignore[attr-defined]
    assert callback.status == "delivered"
    assert [(a.number, a.http_status) for a in callback.attempts] == [
        (1, 500),
        (2, 503),
        (3, 200),
    ]
    # Each retry waited for its backoff after the POST before it.
    first, second, third = callback.attempts
    assert first.at < second.at < third.at

    # A worker counts a POST after recording it: the counts may come a moment later.
    def added() -> dict[str, int]:
        after = callback_outcomes(pipeline)
        return {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}

    pipeline.wait_for(lambda: sum(added().values()) >= 3)
    assert added() == {"retrying": 2, "delivered": 1}


def test_a_receiver_answering_410_gets_no_more(pipeline: Pipeline, receiver: Receiver) -> None:
    receiver.answers = [410]
    pipeline.start_worker()
    job_id = notify(
        "alerts", to=["oncall@example.test"], subject="[P1] db-01 down", text="Disk full",
        callback_url=receiver.url, runtime=pipeline.runtime,
    )  # fmt: skip
    pipeline.wait_final(job_id)
    pipeline.wait_for(lambda: callbacks_settled(pipeline, job_id, 1))
    (event,) = pipeline.runtime.store.events_of(job_id)
    callback = event.callback  # type: ignore[attr-defined]
    assert (callback.status, callback.attempt_count) == ("gone", 1)
    assert receiver.statuses() == [410]
    # Counted after the record, so a moment later.
    pipeline.wait_for(lambda: callback_outcomes(pipeline).get("gone", 0) >= 1)
    # Nothing is due: neither a retry nor the sweep would send it again.
    a_year_on = callback.created_at + timedelta(days=365)
    assert callback.id not in pipeline.runtime.store.due_callbacks(a_year_on, grace=timedelta(0))


def test_a_job_without_a_callback_url_records_its_events_and_posts_nothing(
    pipeline: Pipeline, receiver: Receiver
) -> None:
    pipeline.server.fail_next("rcpt", "550 5.1.1 User unknown")
    pipeline.start_worker()
    job_id = notify(
        "alerts", to=["gone@example.test"], subject="[P1] db-01 down", text="Disk full",
        runtime=pipeline.runtime,
    )  # fmt: skip
    pipeline.wait_final(job_id)
    (event,) = pipeline.runtime.store.events_of(job_id)
    assert (event.event, event.recipient, event.smtp_code) == ("failed", "gone@example.test", 550)
    assert event.callback is None  # type: ignore[attr-defined]
    assert receiver.posts == []


def test_a_target_the_setting_does_not_allow_is_refused_at_intake(pipeline: Pipeline) -> None:
    for url in ("http://169.254.169.254/latest/meta-data/", "http://10.0.0.7/hook",
                "http://192.168.1.1:8080/admin"):  # fmt: skip
        with pytest.raises(InvalidMessageError) as caught:
            notify(
                "alerts", to=["oncall@example.test"], subject="[P1] db-01 down", text="Disk full",
                callback_url=url, runtime=pipeline.runtime,
            )  # fmt: skip
        assert caught.value.field == "callback_url"
        assert "MAILPIPE_CALLBACK_ALLOWED" in str(caught.value)
    assert pipeline.runtime.store.find_jobs(JobQuery(made_by=None, every_key=True)) == []


def test_a_name_resolving_to_a_loopback_address_is_refused_when_sent_and_recorded(
    pipeline: Pipeline, receiver: Receiver
) -> None:
    # The worker allows the name localhost but no loopback network: the name passes its
    # look at the URL, the address it resolves to does not.
    pipeline.env["MAILPIPE_CALLBACK_ALLOWED"] = "http://localhost"
    before = callback_outcomes(pipeline).get("refused", 0)
    pipeline.start_worker()
    job_id = notify(
        "alerts", to=["oncall@example.test"], subject="[P1] db-01 down", text="Disk full",
        callback_url=f"http://localhost:{receiver.port}/hooks/mailpipe", runtime=pipeline.runtime,
    )  # fmt: skip
    pipeline.wait_final(job_id)
    pipeline.wait_for(lambda: callbacks_settled(pipeline, job_id, 1))
    (event,) = pipeline.runtime.store.events_of(job_id)
    callback = event.callback  # type: ignore[attr-defined]
    assert (callback.status, callback.attempt_count) == ("refused", 1)
    (attempt,) = callback.attempts
    assert attempt.http_status is None
    assert attempt.error.startswith("refused: localhost resolves to ")
    assert (
        "a loopback address, and no network in MAILPIPE_CALLBACK_ALLOWED holds it" in attempt.error
    )
    assert receiver.posts == []
    # Counted after the record, so a moment later.
    pipeline.wait_for(lambda: callback_outcomes(pipeline).get("refused", 0) == before + 1)
    # Refused for good: nothing is due again.
    a_day_on = callback.created_at + timedelta(days=1)
    assert callback.id not in pipeline.runtime.store.due_callbacks(a_day_on, grace=timedelta(0))


def batch(*recipients: str) -> list[dict[str, object]]:
    return [
        {"to": [to], "subject": "maintenance tonight", "text": "22:00 UTC"} for to in recipients
    ]


def test_a_batch_gives_its_callback_url_to_every_message_that_names_none(
    pipeline: Pipeline, receiver: Receiver
) -> None:
    own = Receiver(CALLBACK_SECRET)
    try:
        messages = batch("a@example.test", "b@example.test", "c@example.test")
        messages[1]["callback_url"] = own.url
        pipeline.start_worker()
        ids = notify_many("alerts", messages, callback_url=receiver.url, runtime=pipeline.runtime)
        pipeline.wait_final(*ids)
        for job_id in ids:
            pipeline.wait_for(lambda job_id=job_id: callbacks_settled(pipeline, job_id, 1))
        assert sorted(e["recipient"] for e in receiver.taken()) == [
            "a@example.test", "c@example.test"
        ]  # fmt: skip
        assert [(e["recipient"], e["job_id"]) for e in own.taken()] == [("b@example.test", ids[1])]
    finally:
        own.close()


def test_a_batch_message_whose_callback_url_is_not_allowed_refuses_the_batch_naming_it(
    pipeline: Pipeline, receiver: Receiver
) -> None:
    messages = batch("a@example.test", "b@example.test")
    messages[1]["callback_url"] = "http://169.254.169.254/latest/meta-data/"
    with pytest.raises(InvalidMessageError) as caught:
        notify_many("alerts", messages, callback_url=receiver.url, runtime=pipeline.runtime)
    assert caught.value.field == "messages[1].callback_url"
    assert "MAILPIPE_CALLBACK_ALLOWED" in str(caught.value)
    with pytest.raises(InvalidMessageError) as caught:
        notify_many("alerts", batch("a@example.test"), callback_url="http://10.9.9.9/h",
                    runtime=pipeline.runtime)  # fmt: skip
    assert caught.value.field == "callback_url"
    assert pipeline.runtime.store.status_counts() == {}


@dataclass(frozen=True)
class Context:
    """What post_callback needs, with settings of the test's own."""

    settings: Settings
    store: Store
    metrics: Metrics


def test_a_callback_past_its_max_age_is_given_up_recorded_and_counted(
    pipeline: Pipeline, receiver: Receiver
) -> None:
    receiver.answers = [500]
    job_id = notify(
        "alerts", to=["oncall@example.test"], subject="[P1] db-01 down", text="Disk full",
        runtime=pipeline.runtime,
    )  # fmt: skip
    entry = EventEntry(job_id=job_id, event="delivered", profile="alerts",
                       recipient="oncall@example.test", at=utcnow(), smtp_code=250,
                       callback_url=receiver.url)  # fmt: skip
    pipeline.runtime.store.add_events([entry])
    settings = pipeline.runtime.settings.model_copy(update={"callback_max_age_seconds": 0.001})
    rt = Context(settings, pipeline.runtime.store, pipeline.runtime.metrics)
    before = callback_outcomes(pipeline).get("gave_up", 0)
    transport = CallbackTransport(settings.callback_policy())
    with httpx.Client(transport=transport, follow_redirects=False, trust_env=False) as client:
        decision = post_callback(rt, entry.callback_id, client)
    assert decision.action == "done"
    assert receiver.statuses() == [500]
    (event,) = pipeline.runtime.store.events_of(job_id)
    callback = event.callback  # type: ignore[attr-defined]
    assert (callback.status, [a.error for a in callback.attempts]) == ("expired", ["HTTP 500"])
    assert callback_outcomes(pipeline)["gave_up"] == before + 1
