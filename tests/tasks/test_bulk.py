"""Bulk fan-out: notify_many → batch task messages → a real worker → one email per message."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import timedelta

import pytest
import redis
from kombu import Connection

from tests.pipeline import Pipeline
from worker.delivery import deliver, deliver_batch, deliver_with_queued
from worker.intake import InvalidMessageError, notify, notify_many
from worker.queue import BATCH_TASK, QUEUE
from worker.store.tables import Job, utcnow


def messages(count: int, **fields: object) -> list[dict[str, object]]:
    return [
        {"to": [f"subscriber{n}@example.test"], "subject": f"Status update {n}",
         "text": f"Hello subscriber {n}: the incident is resolved.", **fields}
        for n in range(count)
    ]  # fmt: skip


def task_messages(pipeline: Pipeline) -> list[dict[str, object]]:
    """The task messages waiting on the normal queue (the broker is this test's own Redis)."""
    broker = redis.Redis.from_url(pipeline.runtime.settings.broker_url.get_secret_value())
    raw = broker.lrange(QUEUE, 0, -1)
    broker.close()
    return [json.loads(m) for m in raw]


def test_a_fan_out_is_stored_at_once_and_sent_in_batches_one_email_each(
    pipeline: Pipeline,
) -> None:
    ids = notify_many("alerts", messages(120), runtime=pipeline.runtime)
    assert len(set(ids)) == 120
    waiting = task_messages(pipeline)
    assert [m["headers"]["task"] for m in waiting] == [BATCH_TASK] * 3
    carried = [json.loads(base64.b64decode(m["body"]))[0] for m in waiting]
    assert sorted(len(job_ids) for job_ids, _ in carried) == [20, 50, 50]  # batch_size 50
    assert sorted(i for job_ids, _ in carried for i in job_ids) == sorted(ids)
    assert {priority for _, priority in carried} == {"normal"}
    pipeline.start_worker()
    pipeline.wait_final(*ids, seconds=120)
    for job_id in ids:
        job = pipeline.runtime.store.get_job(job_id)
        assert job is not None
        assert (job.status, job.attempt_count) == ("delivered", 1)
    received = sorted(m.rcpt_tos[0] for m in pipeline.server.messages)
    assert received == sorted(f"subscriber{n}@example.test" for n in range(120))
    assert len(pipeline.idp.issued_access_tokens) == 1
    # 5 windows of at most 25 jobs over pooled connections: one per batch at most.
    assert len(pipeline.server.sessions) <= 3


def test_one_bad_message_refuses_the_whole_batch_naming_it(pipeline: Pipeline) -> None:
    batch = messages(5)
    batch[3]["to"] = ["not an address"]
    with pytest.raises(InvalidMessageError) as caught:
        notify_many("alerts", batch, runtime=pipeline.runtime)
    assert caught.value.field == "messages[3].to"
    assert "\n" not in str(caught.value)
    assert pipeline.runtime.store.status_counts() == {}
    batch[3] = {**messages(1)[0], "bcc_list": ["x@example.test"]}
    with pytest.raises(InvalidMessageError, match=r"^messages\[3\]\.bcc_list: unknown field$"):
        notify_many("alerts", batch, runtime=pipeline.runtime)


def test_idempotency_keys_make_a_resent_batch_send_nothing_twice(pipeline: Pipeline) -> None:
    batch = [m | {"idempotency_key": f"status-42-{n}"} for n, m in enumerate(messages(4))]
    first = notify_many("alerts", batch, runtime=pipeline.runtime)
    again = notify_many("alerts", batch + messages(1), runtime=pipeline.runtime)
    assert again[:4] == first
    pipeline.start_worker()
    pipeline.wait_final(*again)
    assert len(pipeline.server.messages) == 5
    with pytest.raises(InvalidMessageError, match="idempotency_key appears twice"):
        notify_many("alerts", [batch[0], batch[0]], runtime=pipeline.runtime)


def test_a_job_that_needs_a_retry_leaves_the_batch_as_a_task_of_its_own(
    pipeline: Pipeline,
) -> None:
    pipeline.server.fail_next("rcpt", "451 4.3.0 try again later")
    ids = notify_many("alerts", messages(3), runtime=pipeline.runtime)
    pipeline.start_worker()
    pipeline.wait_final(*ids)
    jobs = [pipeline.runtime.store.get_job(job_id) for job_id in ids]
    assert sorted(j.attempt_count for j in jobs if j) == [1, 1, 2]
    assert all(j is not None and j.status == "delivered" for j in jobs)
    retried = next(j for j in jobs if j and j.attempt_count == 2)
    assert [a.outcome for a in retried.attempts] == ["transient", "delivered"]
    assert retried.batched is False  # its retry went as a single task
    assert len(pipeline.server.messages) == 3


def test_batches_lost_with_the_broker_are_republished_once_their_queue_is_empty(
    pipeline: Pipeline,
) -> None:
    ids = notify_many("alerts", messages(60), runtime=pipeline.runtime)
    broker = Connection(pipeline.runtime.settings.broker_url.get_secret_value())
    with broker.channel() as channel:
        channel.client.delete(QUEUE)  # this test's own broker: a restart without its data
    broker.release()
    now = utcnow()
    store = pipeline.runtime.store
    grace = pipeline.runtime.settings.requeue_grace_seconds
    later = now + timedelta(seconds=grace + 1)
    # With a batch message still waiting, none of its jobs is taken for lost ...
    assert store.lost_jobs(later, grace=timedelta(seconds=grace),
                           waiting_by_priority={"normal": 1}) == []  # fmt: skip
    # ... with the queue empty, every one of them is, and the sweep sends them on.
    lost = store.lost_jobs(later, grace=timedelta(seconds=grace), waiting_by_priority={})
    assert sorted(job_id for job_id, _ in lost) == sorted(ids)
    pipeline.start_worker()
    pipeline.start_beat()
    pipeline.wait_final(*ids, seconds=120)
    assert len(pipeline.server.messages) == 60
    with store.session() as session:
        assert session.query(Job).filter(Job.status != "delivered").count() == 0


def test_a_single_job_takes_the_queued_jobs_of_its_profile_and_priority_along(
    pipeline: Pipeline,
) -> None:
    rt = pipeline.runtime
    waiting = [notify("alerts", to=[f"r{n}@example.test"], subject=f"[P2] {n}", text="x",
                      runtime=rt) for n in range(5)]  # fmt: skip
    page = notify("alerts", to=["oncall@example.test"], subject="[P1]", text="x",
                  priority="high", runtime=rt)  # fmt: skip
    decisions = deliver_with_queued(waiting[2], rt, worker="w", limit=3)
    assert [(job.id, d.action) for job, d in decisions] == [
        (waiting[2], "done"),
        (waiting[0], "done"),
        (waiting[1], "done"),
    ], "its own first, then the oldest"
    assert len(pipeline.server.messages) == 3
    assert len(pipeline.server.sessions) == 1
    # Their own task messages arrive later and find nothing to do.
    assert deliver(waiting[0], rt, worker="w").action == "skip"
    statuses = {j: rt.store.get_job(j).status for j in [*waiting, page]}  # type: ignore[union-attr]
    assert statuses == {
        waiting[0]: "delivered",
        waiting[1]: "delivered",
        waiting[2]: "delivered",
        waiting[3]: "queued",
        waiting[4]: "queued",
        page: "queued",
    }
    attempts = [rt.store.get_job(j).attempts for j in waiting[:3]]  # type: ignore[union-attr]
    assert [len(a) for a in attempts] == [1, 1, 1], "each job its own attempt"


def test_an_unexpected_error_mid_batch_is_one_attempt_and_the_rest_go_back_untried(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt = pipeline.runtime
    ids = notify_many("alerts", messages(4), runtime=rt)
    real = rt.transport.send_many

    def breaks_after_one(profile: str, outgoing: list[object]) -> Iterator[object]:
        results = real(profile, outgoing)  # type: ignore[arg-type]
        yield next(results)
        results.close()  # type: ignore[attr-defined]
        raise RuntimeError("a bug in the middle of a run")

    monkeypatch.setattr(rt.transport, "send_many", breaks_after_one)
    deliver_batch(ids, rt, worker="w")
    jobs = [rt.store.get_job(job_id) for job_id in ids]
    summary = [(j.status, j.attempt_count, j.sends) for j in jobs if j]
    assert summary == [
        ("delivered", 1, 1),
        ("queued", 1, 1),  # the one in flight: an attempt, so a bug cannot loop forever
        ("queued", 0, 0),  # never tried: back in line, nothing counted
        ("queued", 0, 0),
    ]
    assert jobs[1] is not None and jobs[1].attempts[0].text == "unexpected RuntimeError"
    assert len(pipeline.server.messages) == 1
