"""The HTTP intake through a real uvicorn and a real worker, to the test SMTP server."""

from __future__ import annotations

import base64
import logging
import re
import urllib.error
import urllib.request
from datetime import timedelta

import httpx
import pytest
from pydantic import SecretStr

from tests.fakes.callback_receiver import Receiver
from tests.pipeline import API_KEY, CALLBACK_SECRET, LIMITED_KEY, Pipeline
from tests.support import free_port
from tests.tasks.test_reload import edit as edit_profiles
from tests.worker.faces.http.conftest import Api, ServeFactory
from tests.worker.faces.http.samples import am_firing, am_resolved, grafana_firing
from worker.queue import build_producer
from worker.store.tables import utcnow

PROBLEM = "application/problem+json"


def notification(**fields: object) -> dict[str, object]:
    body: dict[str, object] = {
        "profile": "alerts",
        "to": ["oncall@example.test"],
        "subject": "[P1] db-01 down",
        "text": "db-01 stopped answering.",
    }
    body.update(fields)
    return body


def subjects(pipeline: Pipeline) -> list[str]:
    return [m.message["Subject"] for m in pipeline.server.messages]


def problem(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, object] = response.json()
    assert body["status"] == status
    assert "\n" not in str(body["detail"])
    return body


def test_a_notification_is_accepted_delivered_and_reported(api: Api, pipeline: Pipeline) -> None:
    pipeline.start_worker()
    attachment = {"filename": "graph.txt", "content_base64": base64.b64encode(b"42").decode()}
    response = api.client.post(
        "/v1/notifications", json=notification(html="<p>down</p>", attachments=[attachment])
    )

    assert response.status_code == 202, response.text
    accepted = response.json()
    assert accepted["status_url"] == f"/v1/notifications/{accepted['id']}"
    assert response.headers["location"] == accepted["status_url"]
    pipeline.wait_final(accepted["id"])
    status = api.client.get(accepted["status_url"])
    assert status.status_code == 200
    job = status.json()
    assert (job["status"], job["to"]) == ("delivered", ["oncall@example.test"])
    assert job["attempts"][0]["recipients"][0]["accepted"] is True
    assert subjects(pipeline) == ["[P1] db-01 down"]


def test_the_idempotency_key_makes_a_retry_return_the_first_job(
    api: Api, pipeline: Pipeline
) -> None:
    pipeline.start_worker()
    headers = {"Idempotency-Key": "incident-42"}
    first = api.client.post("/v1/notifications", json=notification(), headers=headers)
    again = api.client.post("/v1/notifications", json=notification(), headers=headers)

    assert first.status_code == again.status_code == 202
    assert first.json()["id"] == again.json()["id"]
    pipeline.wait_final(first.json()["id"])
    assert len(pipeline.server.messages) == 1


@pytest.mark.parametrize(
    "authenticate",
    [
        {"headers": {"Authorization": f"Bearer {API_KEY}"}},
        {"params": {"api_key": API_KEY}},
        {"auth": ("alertmanager", API_KEY)},
    ],
    ids=["bearer", "query", "basic"],
)
def test_a_key_is_accepted_in_each_way_a_sender_can_give_it(
    api: Api, authenticate: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    # httpx (the test's client, not mailpipe) logs every URL it requests, ?api_key= and all.
    monkeypatch.setattr(logging.getLogger("httpx"), "disabled", True)
    response = api.anonymous.post(
        "/v1/notifications",
        json=notification(),
        **authenticate,  # type: ignore[arg-type]
    )
    assert response.status_code == 202, response.text


def test_no_key_or_a_wrong_key_is_401_and_a_key_for_another_profile_is_403(api: Api) -> None:
    missing = problem(api.anonymous.post("/v1/notifications", json=notification()), 401)
    assert "API key is required" in str(missing["detail"])
    wrong = api.anonymous.post(
        "/v1/notifications", json=notification(), headers={"Authorization": "Bearer nope"}
    )
    assert problem(wrong, 401)["detail"] == "the API key is not valid"
    assert wrong.headers["www-authenticate"].startswith("Bearer")
    limited = {"Authorization": f"Bearer {LIMITED_KEY}"}
    refused = api.anonymous.post("/v1/notifications", json=notification(), headers=limited)
    assert "profile 'alerts'" in str(problem(refused, 403)["detail"])
    route = api.anonymous.post(
        "/v1/webhooks/alertmanager", params={"route": "oncall"}, json=am_firing(), headers=limited
    )
    assert "route 'oncall'" in str(problem(route, 403)["detail"])


def test_a_job_the_key_may_not_see_is_404_like_one_that_does_not_exist(api: Api) -> None:
    job_id = api.client.post("/v1/notifications", json=notification()).json()["id"]
    limited = {"Authorization": f"Bearer {LIMITED_KEY}"}

    assert problem(api.anonymous.get(f"/v1/notifications/{job_id}", headers=limited), 404)
    assert problem(api.client.get("/v1/notifications/0123456789abcdef"), 404)["field"] == "id"


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"to": ["not an address"]}, "to", "not an email address"),
        ({"profile": "nobody"}, "profile", "unknown profile 'nobody'"),
        ({"headers": {"X-Ticket": "1\r\nBcc: x@example.test"}}, "headers['X-Ticket']", "line"),
        ({"subject": None}, "subject", "string"),
        ({"priority": "urgent"}, "priority", "'normal' or 'high'"),
        ({"attachments": [{"filename": "a", "content_base64": "%%%"}]},
         "attachments[0].content_base64", "base64"),
        ({"surprise": 1}, "surprise", "Extra inputs"),
    ],
)  # fmt: skip
def test_bad_input_is_422_naming_the_field_and_stores_nothing(
    api: Api, pipeline: Pipeline, fields: dict[str, object], field: str, words: str
) -> None:
    body = problem(api.client.post("/v1/notifications", json=notification(**fields)), 422)

    assert body["field"] == field
    assert words in str(body["detail"])
    assert pipeline.runtime.store.status_counts() == {}


def test_a_body_over_the_limit_is_413_before_it_is_read(api: Api, pipeline: Pipeline) -> None:
    limit = pipeline.runtime.settings.api_max_body_bytes
    huge = notification(text="x" * (limit + 1))

    assert "MAILPIPE_API_MAX_BODY_BYTES" in str(
        problem(api.client.post("/v1/notifications", json=huge), 413)["detail"]
    )
    chunks = (b"x" * 65536 for _ in range(limit // 65536 + 2))  # no Content-Length: streamed
    streamed = api.client.post(
        "/v1/notifications", content=chunks, headers={"Content-Type": "application/json"}
    )
    problem(streamed, 413)
    assert pipeline.runtime.store.status_counts() == {}


def test_alertmanager_groups_arrive_once_however_often_they_are_resent(
    api: Api, pipeline: Pipeline
) -> None:
    pipeline.start_worker()
    hook = "/v1/webhooks/alertmanager"
    first = api.client.post(hook, params={"route": "oncall"}, json=am_firing())
    resent = api.client.post(hook, params={"route": "oncall"}, json=am_firing())
    resolved = api.client.post(hook, params={"route": "oncall"}, json=am_resolved())

    assert first.status_code == resent.status_code == resolved.status_code == 202
    assert first.json()["id"] == resent.json()["id"] != resolved.json()["id"]
    pipeline.wait_final(first.json()["id"], resolved.json()["id"])
    assert sorted(s.split(" ")[0] for s in subjects(pipeline)) == ["[FIRING:3]", "[RESOLVED]"]
    message = pipeline.server.messages[0]
    assert message.rcpt_tos == ["oncall@example.test"]
    assert pipeline.runtime.store.get_job(first.json()["id"]).priority == "high"  # type: ignore[union-attr]


def test_a_webhook_without_a_route_names_its_profile_and_recipients(
    api: Api, pipeline: Pipeline
) -> None:
    pipeline.start_worker()
    params = {"profile": "alerts", "to": ["a@example.test", "b@example.test"]}
    response = api.client.post("/v1/webhooks/grafana", params=params, json=grafana_firing())

    assert response.status_code == 202, response.text
    pipeline.wait_final(response.json()["id"])
    assert sorted(pipeline.server.messages[0].rcpt_tos) == params["to"]
    missing = problem(api.client.post("/v1/webhooks/grafana", json=grafana_firing()), 422)
    assert missing["field"] == "route"
    unknown = api.client.post("/v1/webhooks/grafana", params={"route": "x"}, json=grafana_firing())
    assert "unknown route 'x' (routes: oncall, script)" in str(problem(unknown, 422)["detail"])


def test_a_json_webhook_is_rendered_by_its_routes_templates(api: Api, pipeline: Pipeline) -> None:
    pipeline.start_worker()
    body = {"check": "disk", "host": "db-01", "state": "critical"}
    response = api.client.post("/v1/webhooks/json", params={"route": "script"}, json=body)

    assert response.status_code == 202, response.text
    pipeline.wait_final(response.json()["id"])
    message = pipeline.server.messages[0].message
    assert message["Subject"] == "disk is critical"
    assert "Check disk on db-01: critical" in message.get_body(("plain",)).get_content()  # type: ignore[union-attr]


def test_an_invalid_alertmanager_body_is_422_naming_the_field(api: Api) -> None:
    body = am_firing()
    body["alerts"][0]["status"] = "burning"
    answer = problem(
        api.client.post("/v1/webhooks/alertmanager", params={"route": "oncall"}, json=body), 422
    )
    assert answer["field"] == "alerts[0].status"


def test_health_needs_no_key_and_readiness_names_the_part_that_is_down(
    api: Api, pipeline: Pipeline, serve: ServeFactory
) -> None:
    assert api.anonymous.get("/healthz").json() == {"status": "ok"}
    assert api.anonymous.get("/readyz").json() == {"status": "ok"}
    closed = f"redis://127.0.0.1:{free_port()}/0"
    broken = pipeline.runtime.settings.model_copy(
        update={
            "broker_url": SecretStr(closed),
            "database_url": SecretStr(f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/x"),
        }
    )
    runtime = build_producer(broken)
    try:
        url = serve(runtime)
        ready = httpx.get(f"{url}/readyz", timeout=30)
        detail = str(problem(ready, 503)["detail"])
        assert "database:" in detail and "broker:" in detail and "redis:" not in detail
        down = httpx.post(
            f"{url}/v1/notifications",
            json=notification(),
            headers={"Authorization": f"Bearer {API_KEY}"},
            timeout=30,
        )
        said = str(problem(down, 503)["detail"])
        assert said == "the database is unavailable; try again shortly"  # not where it is
    finally:
        runtime.close()


def test_a_job_is_stored_and_accepted_while_the_broker_is_down(
    pipeline: Pipeline, serve: ServeFactory
) -> None:
    closed = f"redis://127.0.0.1:{free_port()}/0"
    settings = pipeline.runtime.settings.model_copy(update={"broker_url": SecretStr(closed)})
    runtime = build_producer(settings)
    try:
        url = serve(runtime)
        response = httpx.post(
            f"{url}/v1/notifications",
            json=notification(),
            headers={"Authorization": f"Bearer {API_KEY}"},
            timeout=60,
        )
        assert response.status_code == 202, response.text
        assert pipeline.runtime.store.status_counts() == {"queued": 1}
        job_id = response.json()["id"]
        next_sweep = pipeline.runtime.store.unpublished_jobs(utcnow(), grace=timedelta(hours=1))
        assert next_sweep == [(job_id, "normal")], "published by the next sweep, not after a grace"
    finally:
        runtime.close()


def metric(text: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}(?:\{{(.*)\}})? (\S+)", line)
        if match and ",".join(sorted((match[1] or "").split(","))) == wanted:
            return float(match[2])
    return 0.0


def test_metrics_count_what_two_worker_processes_did(api: Api, pipeline: Pipeline) -> None:
    pipeline.start_worker(pool="prefork", concurrency=2)
    pipeline.start_worker(pool="prefork", concurrency=2)
    ids = [
        api.client.post("/v1/notifications", json=notification(subject=f"n{n}")).json()["id"]
        for n in range(12)
    ]
    pipeline.wait_final(*ids, seconds=60)
    # A worker counts an attempt after its record is written (a batch's, after all of them).
    counted = ("mailpipe_jobs_delivered_total", "mailpipe_send_duration_seconds_count",
               "mailpipe_enqueue_to_accepted_seconds_count")  # fmt: skip
    pipeline.wait_for(
        lambda: all(metric(api.client.get("/metrics").text, name, profile="alerts") >= 12
                    for name in counted)
    )  # fmt: skip

    assert problem(api.anonymous.get("/metrics"), 401)
    text = api.client.get("/metrics").text
    assert metric(text, "mailpipe_jobs_enqueued_total", profile="alerts") == 12
    assert metric(text, "mailpipe_jobs_delivered_total", profile="alerts") == 12
    assert metric(text, "mailpipe_attempts_total", profile="alerts", outcome="delivered") == 12
    assert metric(text, "mailpipe_send_duration_seconds_count", profile="alerts") == 12
    assert metric(text, "mailpipe_enqueue_to_accepted_seconds_count", profile="alerts") == 12
    assert metric(text, "mailpipe_token_requests_total", profile="alerts", result="ok") >= 1
    assert metric(text, "mailpipe_jobs", status="delivered") == 12
    assert metric(text, "mailpipe_queue_messages", queue="mail") == 0
    assert metric(text, "mailpipe_oldest_queued_job_age_seconds") == 0
    assert metric(text, "mailpipe_up") == 1


def test_serve_takes_a_route_added_to_the_file(api: Api, pipeline: Pipeline) -> None:
    hook = "/v1/webhooks/alertmanager"
    before = api.client.post(hook, params={"route": "later"}, json=am_firing())
    assert before.status_code == 422

    edit_profiles(
        pipeline,
        "[routes.oncall]",
        '[routes.later]\nprofile = "alerts"\nto = ["later@example.test"]\n\n[routes.oncall]',
    )
    after = api.client.post(hook, params={"route": "later"}, json=am_firing())

    assert after.status_code == 202, after.text


def test_a_batch_is_accepted_in_one_request_and_each_message_sent(
    api: Api, pipeline: Pipeline
) -> None:
    pipeline.start_worker()
    body = {
        "profile": "alerts",
        "messages": [
            {"to": [f"responder{n}@example.test"], "subject": f"[P1] page {n}",
             "text": "db-01 down", "idempotency_key": f"page-{n}"}
            for n in range(40)
        ],
    }  # fmt: skip
    response = api.client.post("/v1/notifications:batch", json=body)
    assert response.status_code == 202, response.text
    accepted = response.json()["notifications"]
    assert len(accepted) == 40
    assert all(a["status_url"] == f"/v1/notifications/{a['id']}" for a in accepted)
    again = api.client.post("/v1/notifications:batch", json=body).json()["notifications"]
    assert again == accepted  # each message's key makes the resend harmless
    pipeline.wait_final(*(a["id"] for a in accepted), seconds=60)
    assert sorted(subjects(pipeline)) == sorted(f"[P1] page {n}" for n in range(40))


def test_a_bad_message_in_a_batch_is_422_naming_it_and_stores_nothing(
    api: Api, pipeline: Pipeline
) -> None:
    good = {"to": ["oncall@example.test"], "subject": "s", "text": "t"}
    body = {"profile": "alerts", "messages": [good, {**good, "to": ["oncall@@example"]}]}
    found = problem(api.client.post("/v1/notifications:batch", json=body), 422)
    assert found["field"] == "messages[1].to"
    assert pipeline.runtime.store.status_counts() == {}
    limited = api.client.post(
        "/v1/notifications:batch", json={**body, "profile": "alerts", "messages": [good]},
        headers={"Authorization": f"Bearer {LIMITED_KEY}"},
    )  # fmt: skip
    problem(limited, 403)


def test_a_callback_url_gets_the_events_and_the_status_lists_them(
    api: Api, pipeline: Pipeline
) -> None:
    receiver = Receiver(CALLBACK_SECRET)
    try:
        pipeline.start_worker()
        response = api.client.post(
            "/v1/notifications", json=notification(callback_url=receiver.url)
        )
        assert response.status_code == 202, response.text
        url = response.json()["status_url"]

        def callback_done() -> bool:
            events = api.client.get(url).json()["events"]
            return bool(events) and events[0]["callback"]["status"] == "delivered"

        pipeline.wait_for(callback_done)
        job = api.client.get(url).json()
        (event,) = job["events"]
        assert (event["event"], event["recipient"], event["smtp_code"]) == (
            "delivered", "oncall@example.test", 250,
        )  # fmt: skip
        assert [a["http_status"] for a in event["callback"]["attempts"]] == [200]
        assert [e["job_id"] for e in receiver.taken()] == [job["id"]]
    finally:
        receiver.close()


def test_a_callback_url_that_is_not_http_is_422_naming_it(api: Api) -> None:
    response = api.client.post("/v1/notifications", json=notification(callback_url="ftp://x/y"))
    assert problem(response, 422)["field"] == "callback_url"


def test_a_callback_url_to_the_metadata_service_is_422_naming_the_setting(api: Api) -> None:
    response = api.client.post(
        "/v1/notifications",
        json=notification(callback_url="http://169.254.169.254/latest/meta-data/iam/"),
    )
    body = problem(response, 422)
    assert body["field"] == "callback_url"
    assert "169.254.169.254 is a link-local address" in str(body["detail"])
    assert "MAILPIPE_CALLBACK_ALLOWED" in str(body["detail"])


def test_a_batch_takes_a_callback_url_for_all_and_one_per_message(
    api: Api, pipeline: Pipeline
) -> None:
    receiver = Receiver(CALLBACK_SECRET)
    try:
        pipeline.start_worker()
        messages = [
            {"to": ["a@example.test"], "subject": "s", "text": "t"},
            {"to": ["b@example.test"], "subject": "s", "text": "t",
             "callback_url": "http://169.254.169.254/latest/"},
        ]  # fmt: skip
        body = {"profile": "alerts", "callback_url": receiver.url, "messages": messages}
        found = problem(api.client.post("/v1/notifications:batch", json=body), 422)
        assert found["field"] == "messages[1].callback_url"
        messages[1]["callback_url"] = receiver.url.replace("/hooks/", "/other/")
        response = api.client.post("/v1/notifications:batch", json=body)
        assert response.status_code == 202, response.text
        urls = [n["status_url"] for n in response.json()["notifications"]]

        def callbacks_done() -> bool:
            events = [e for url in urls for e in api.client.get(url).json()["events"]]
            return len(events) == 2 and all(e["callback"]["status"] == "delivered" for e in events)

        pipeline.wait_for(callbacks_done)
        taken = sorted((p.event["recipient"], p.path) for p in receiver.posts if p.status == 200)
        assert taken == [
            ("a@example.test", "/hooks/mailpipe"),
            ("b@example.test", "/other/mailpipe"),
        ]
    finally:
        receiver.close()


def test_each_request_is_logged_once_with_its_status_and_never_its_query(
    api: Api, pipeline: Pipeline, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mailpipe.http")

    def status(key: str) -> int:  # urllib, which logs no URL (the client's own log would)
        try:
            url = f"{api.url}/v1/notifications/none?api_key={key}"
            with urllib.request.urlopen(url):  # noqa: S310 (the test server, http)
                return 200
        except urllib.error.HTTPError as error:
            return error.code

    assert (status(API_KEY), status("mp_wrong")) == (404, 401)

    def lines() -> list[str]:  # a request's line is written once its answer has gone
        return [r.getMessage() for r in caplog.records if r.name == "mailpipe.http"]

    pipeline.wait_for(lambda: len(lines()) >= 2)
    logged = lines()
    # The 401 comes from the gate in front of the app: it is logged all the same.
    assert sorted(line.rsplit(" ", 1)[0] for line in logged) == [
        "GET /v1/notifications/none 401",
        "GET /v1/notifications/none 404",
    ], logged
    assert all(re.fullmatch(r"GET \S+ \d{3} \d+\.\dms", line) for line in logged), logged
    assert not any("api_key" in line or API_KEY in line or "mp_wrong" in line for line in logged)
