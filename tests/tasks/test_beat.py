"""Beat's periodic tasks, run by a real worker."""

from __future__ import annotations

from tests.fakes.idp import issue, slowly
from tests.pipeline import Pipeline
from worker.queue import REFRESH_TASK, REQUEUE_TASK


def test_tokens_about_to_expire_are_refreshed_once_even_by_two_beats(pipeline: Pipeline) -> None:
    idp = pipeline.idp
    # 600 s < skew (300) + window (600): every token here counts as expiring, so
    # only the beat lock keeps a second, concurrent run from refreshing again.
    idp.then(issue(expires_in=600), slowly(1.5, issue(expires_in=600)))
    pipeline.runtime.credentials.get(pipeline.runtime.profiles.get("alerts"))
    pipeline.runtime.credentials.get(pipeline.runtime.profiles.get("graph"))
    pipeline.start_worker()
    pipeline.runtime.celery.send_task(REFRESH_TASK)
    pipeline.runtime.celery.send_task(REFRESH_TASK)  # a second beat started by mistake
    pipeline.wait_for(lambda: len(idp.requests) >= 4)
    pipeline.wait_for(lambda: "refresh_expiring_tokens" in pipeline.worker_logs())
    pipeline.wait_for(
        lambda: pipeline.worker_logs().count("mailpipe.refresh_expiring_tokens[") >= 4
    )
    assert len(idp.requests) == 4, "one pre-refresh per profile, not two"
    # The token cache's single flight alone would also keep it at one request;
    # the beat lock is seen in the runs' results: one did the work, one skipped.
    results = sorted(
        line.rsplit(": ", 1)[1]
        for line in pipeline.worker_logs().splitlines()
        if "mailpipe.refresh_expiring_tokens[" in line and " succeeded in " in line
    )
    assert results == ["0", "2"]


def test_an_idle_profiles_token_is_kept_warm_with_nothing_sent(pipeline: Pipeline) -> None:
    pipeline.start_worker()
    pipeline.runtime.celery.send_task(REFRESH_TASK)
    pipeline.wait_for(lambda: pipeline.worker_logs().count("succeeded") >= 1)
    # No cached token: fetched, so the first page after a quiet weekend waits for none.
    granted = sorted(r.form["client_id"] for r in pipeline.idp.requests)
    assert len(granted) == 2, "alerts and graph, once each"
    pipeline.runtime.celery.send_task(REFRESH_TASK)
    pipeline.runtime.celery.send_task(REQUEUE_TASK)
    pipeline.wait_for(lambda: pipeline.worker_logs().count("succeeded") >= 3)
    assert len(pipeline.idp.requests) == 2, "still valid for an hour: not fetched again"
    assert pipeline.server.messages == []


def test_a_delegated_seed_that_never_rotated_is_kept_alive_then_left_until_idle(
    pipeline: Pipeline,
) -> None:
    """Unused, a refresh token expires after the provider's idle limit (Microsoft: 90 days)."""
    idp = pipeline.idp
    seed = "0.ARwA-seed-refresh-token-never-used"
    idp.add_refresh_token(seed)
    path = pipeline.runtime.profiles_file.path
    path.write_text(
        path.read_text()
        + f"""
[profiles.delegated]
host = "127.0.0.1"
from_email = "oncall@example.test"
auth = "oauth"
grant = "refresh_token"
token_url = "{idp.url}"
allow_insecure_token_url = true
client_id = "mailpipe"
refresh_token_env = "DELEGATED_SEED"
"""
    )
    pipeline.env["DELEGATED_SEED"] = seed
    pipeline.start_worker()
    pipeline.runtime.celery.send_task(REFRESH_TASK)
    pipeline.wait_for(lambda: len(idp.requests) >= 1)
    pipeline.wait_for(
        lambda: pipeline.runtime.refresh_tokens.last_rotation("delegated") is not None
    )
    delegated = [r for r in idp.requests if r.form["grant_type"] == "refresh_token"]
    assert [r.form["refresh_token"] for r in delegated] == [seed]
    before = len(idp.requests)
    pipeline.runtime.celery.send_task(REFRESH_TASK)  # rotated just now and warm: nothing to do
    pipeline.wait_for(
        lambda: pipeline.worker_logs().count("mailpipe.refresh_expiring_tokens[") >= 4
    )
    assert len(idp.requests) == before
