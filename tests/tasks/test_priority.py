"""Priority under a backlog: a page goes before a queued fan-out, and a batch makes way for it."""

from __future__ import annotations

from tests.pipeline import Pipeline
from tests.tasks.test_bulk import messages
from worker.intake import notify, notify_many


def started_at(pipeline: Pipeline, job_id: str) -> object:
    job = pipeline.runtime.store.get_job(job_id)
    assert job is not None
    assert job.status == "delivered"
    return job.attempts[0].started_at


def page(pipeline: Pipeline) -> str:
    return notify("alerts", to=["oncall@example.test"], subject="[P1] db-01 down",
                  text="page", priority="high", runtime=pipeline.runtime)  # fmt: skip


def test_a_page_queued_behind_a_fan_out_is_sent_first(pipeline: Pipeline) -> None:
    bulk = notify_many("alerts", messages(150), runtime=pipeline.runtime)
    urgent = page(pipeline)
    pipeline.start_worker(concurrency=1)
    pipeline.wait_final(urgent, *bulk, seconds=120)
    first_bulk = min(started_at(pipeline, job_id) for job_id in bulk)
    assert started_at(pipeline, urgent) < first_bulk  # type: ignore[operator]


def test_a_batch_in_progress_makes_way_for_a_page(pipeline: Pipeline) -> None:
    pipeline.server.rcpt_delay_seconds = 0.05  # a 50-job batch takes 2.5 s or more
    bulk = notify_many("alerts", messages(50), runtime=pipeline.runtime)
    pipeline.start_worker(concurrency=1)
    pipeline.wait_for(lambda: len(pipeline.server.messages) >= 1, seconds=60)
    urgent = page(pipeline)
    pipeline.wait_final(urgent, *bulk, seconds=120)
    sent_after_the_page = [
        job_id for job_id in bulk
        if started_at(pipeline, job_id) > started_at(pipeline, urgent)  # type: ignore[operator]
    ]  # fmt: skip
    # The page went between two of the batch's jobs, not after all 50 of them.
    assert sent_after_the_page, "the page waited for the whole batch"
    assert len(pipeline.server.messages) == 51
