"""Beat's periodic tasks, run by a real worker."""

from __future__ import annotations

from tests.fake_idp import issue, slowly
from tests.tasks.conftest import Pipeline
from worker.celery import REFRESH_TASK, REQUEUE_TASK, app


def test_tokens_about_to_expire_are_refreshed_once_even_by_two_beats(pipeline: Pipeline) -> None:
    idp = pipeline.idp
    idp.then(issue(expires_in=600), slowly(0.5))  # 600 s < skew (300) + window (600)
    pipeline.runtime.credentials.get("alerts")
    pipeline.start_worker()
    app.send_task(REFRESH_TASK)
    app.send_task(REFRESH_TASK)  # a second beat started by mistake
    pipeline.wait_for(lambda: len(idp.requests) >= 2)
    pipeline.wait_for(lambda: "refresh_expiring_tokens" in pipeline.worker_logs())
    pipeline.wait_for(
        lambda: pipeline.worker_logs().count("mailpipe.refresh_expiring_tokens[") >= 4
    )
    assert len(idp.requests) == 2, "one pre-refresh, not two"
    grant = pipeline.runtime.credentials.grant("alerts")
    assert not pipeline.runtime.credentials.cache.expires_within(grant, 900)


def test_idle_profiles_are_left_alone(pipeline: Pipeline) -> None:
    pipeline.start_worker()
    app.send_task(REFRESH_TASK)
    app.send_task(REQUEUE_TASK)
    pipeline.wait_for(lambda: pipeline.worker_logs().count("succeeded") >= 2)
    assert pipeline.idp.requests == [], "no cached token: nobody is sending with it"
