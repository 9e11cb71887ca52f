"""The operator console (/ui/) in a real Chromium, in front of a real worker and SMTP server."""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

import httpx

from tests.pipeline import API_KEY, LIMITED_KEY, Pipeline
from tests.worker.faces.http.conftest import ServeFactory
from tests.worker.faces.http.console_browser import BrowserFactory
from worker.faces.http.keys import digest
from worker.intake import notify
from worker.runtime import Runtime
from worker.settings import ApiKeySpec

# A key that may use only the "graph" profile: the limited operator of these tests.
GRAPH_KEY = "mp_console-graph-only-key-0123456789abcdefghijklmnopq"
# Set to a folder (make screenshots: docs/) to keep the screenshots the run takes.
SCREENSHOTS = os.environ.get("MAILPIPE_TEST_SCREENSHOTS")


def with_keys(runtime: Runtime, *specs: ApiKeySpec) -> Runtime:
    """The same runtime (store, broker, profiles) served with other API keys."""
    settings = runtime.settings.model_copy(update={"api_keys": specs})
    return dataclasses.replace(runtime, settings=settings)


def page(pipeline: Pipeline, subject: str, to: str = "oncall@example.test", **kw: object) -> str:
    """A job made through the API key "tests" (API_KEY): that key's to see in the console."""
    kw.setdefault("api_key_name", "tests")
    return notify("alerts", [to], subject, f"{subject}: details.", runtime=pipeline.runtime, **kw)  # type: ignore[arg-type]


def test_search_finds_a_job_and_its_page_shows_the_250_and_the_attempts(
    pipeline: Pipeline, serve: ServeFactory, browser: BrowserFactory
) -> None:
    pipeline.start_worker()
    wanted = page(pipeline, "[P1] db-01 down", to="dba@example.test", priority="high")
    other = page(pipeline, "[P3] disk 80% on web-02")
    pipeline.wait_final(wanted, other)
    ui = browser(serve(pipeline.runtime))
    ui.sign_in(API_KEY)

    ui.find("#q").send_keys("dba@example")
    ui.find(".filters button[type=submit]").click()
    ui.wait_until(lambda: "q=dba" in ui.path, "the search's results")
    found = [link.text for link in ui.all("a.subject")]
    assert found == ["[P1] db-01 down"]
    assert "delivered" in ui.find("tbody .state").text

    ui.find("a.subject").click()
    ui.wait_until(lambda: ui.path == f"/ui/jobs/{wanted}", "the job's page")
    attempt = ui.find(".attempt").text
    assert "#1" in attempt and "delivered at data" in attempt
    assert "250" in ui.find(".attempt .reply").text
    assert "token from " in attempt and "connection" in attempt
    assert "dba@example.test" in ui.find("table.plain").text
    assert "delivered dba@example.test" in ui.find("ul.events").text  # the job's events
    headers = ui.find("table.headers").text
    assert "Subject [P1] db-01 down" in headers and "Message-ID" in headers

    # By subject and by id too; the state filter narrows the list.
    ui.open("/ui/jobs?q=disk+80%25")
    assert [link.text for link in ui.all("a.subject")] == ["[P3] disk 80% on web-02"]
    ui.open(f"/ui/jobs?q={wanted[:12]}")
    assert [link.text for link in ui.all("a.subject")] == ["[P1] db-01 down"]
    ui.open("/ui/jobs?state=failed")
    assert ui.all("a.subject") == []


def test_a_failed_job_is_retried_from_its_page_and_then_delivered(
    pipeline: Pipeline, serve: ServeFactory, browser: BrowserFactory
) -> None:
    # Every try the pipeline allows (retry_max_attempts = 4) answered "later": the job
    # fails, and the operator's retry must get a new budget, not fail at once.
    pipeline.server.fail_next("data", "451 4.3.0 Mail server temporarily rejected message", 4)
    pipeline.start_worker()
    job_id = page(pipeline, "[P1] payments 5xx")
    pipeline.wait_final(job_id)
    assert pipeline.status(job_id) == "failed"
    ui = browser(serve(pipeline.runtime))
    ui.sign_in(API_KEY)

    ui.open(f"/ui/jobs/{job_id}")
    assert ui.find("h1 .state").text.endswith("failed")
    assert "451" in ui.find(".attempt .reply").text
    assert ui.all("#cancel") == []  # a failed job cannot be cancelled, only retried
    ui.find("#retry").click()

    ui.wait_until(lambda: "Queued again" in ui.text, "the retry's note")
    ui.wait_until(lambda: ui.find("h1 .state").text.endswith("delivered"), "delivered", reload=True)
    numbers = [a.text.split()[0] for a in ui.all(".attempt-head b:first-of-type")]
    assert numbers == ["#1", "#2", "#3", "#4", "#5"]
    assert "250" in ui.all(".attempt .reply")[-1].text
    assert "retry by tests from 127.0.0.1" in ui.find("body").text
    assert ui.all("#retry") == []
    assert [m.message["Subject"] for m in pipeline.server.messages] == ["[P1] payments 5xx"]


def test_a_limited_key_sees_only_its_own(
    pipeline: Pipeline, serve: ServeFactory, browser: BrowserFactory
) -> None:
    graph_only = ApiKeySpec(name="graph-ops", sha256=digest(GRAPH_KEY), profiles=("graph",))
    everything = ApiKeySpec(name="tests", sha256=digest(API_KEY), profiles=("*",), routes=("*",))
    runtime = with_keys(pipeline.runtime, everything, graph_only)
    theirs = notify(
        "graph", ["a@example.test"], "graph page", "x", runtime=runtime, api_key_name="graph-ops"
    )
    not_theirs = page(pipeline, "alerts page")
    url = serve(runtime)
    ui = browser(url)
    ui.sign_in(GRAPH_KEY)

    assert [link.text for link in ui.all("a.subject")] == ["graph page"]
    assert "graph-ops" in ui.find(".who").text
    ui.open("/ui/jobs?q=alerts+page")
    assert ui.all("a.subject") == []
    ui.open("/ui/jobs?profile=alerts")  # a profile it may not see is no filter, not a way in
    assert [link.text for link in ui.all("a.subject")] == ["graph page"]
    assert "alerts" not in [o.text for o in ui.all("select[name=profile] option")]
    ui.open(f"/ui/jobs/{not_theirs}")
    assert "No job" in ui.text
    ui.open(f"/ui/jobs/{theirs}")
    assert "graph page" in ui.find("h1").text
    ui.open("/ui/profiles")
    assert [h.text.split()[-1] for h in ui.all("section.card h2")] == ["graph"]

    # Its session may not act on another profile's job, even with a valid CSRF token.
    cookies = {c["name"]: c["value"] for c in ui.driver.get_cookies()}
    ui.open(f"/ui/jobs/{theirs}")
    csrf = ui.find("input[name=csrf]").get_attribute("value")
    with httpx.Client(base_url=url, cookies=cookies) as client:
        answer = client.post(f"/ui/jobs/{not_theirs}/cancel", data={"csrf": csrf})
    assert answer.status_code == 404
    assert pipeline.status(not_theirs) == "queued"


def test_a_form_posted_without_its_csrf_token_is_refused(
    pipeline: Pipeline, serve: ServeFactory, browser: BrowserFactory
) -> None:
    job_id = page(pipeline, "[P2] queue depth")  # no worker: it stays queued
    url = serve(pipeline.runtime)
    ui = browser(url)
    ui.sign_in(API_KEY)
    ui.open(f"/ui/jobs/{job_id}")
    assert ui.find("h1 .state").text.endswith("queued")

    ui.driver.execute_script(
        "document.querySelectorAll('input[name=csrf]').forEach(e => e.remove())"
    )
    ui.find("#cancel").click()
    ui.wait_until(lambda: "Refused" in ui.find("h1").text, "the refusal")
    assert "CSRF" in ui.text
    assert pipeline.status(job_id) == "queued"

    # The same form with a wrong token, and with no session at all: refused with a 403.
    cookies = {c["name"]: c["value"] for c in ui.driver.get_cookies()}
    with httpx.Client(base_url=url, cookies=cookies) as client:
        assert client.post(f"/ui/jobs/{job_id}/cancel", data={"csrf": "x"}).status_code == 403
    with httpx.Client(base_url=url) as client:
        assert client.post(f"/ui/jobs/{job_id}/cancel", data={}).status_code == 403
    assert pipeline.status(job_id) == "queued"

    # With its token, the same button cancels it.
    ui.open(f"/ui/jobs/{job_id}")
    ui.find("#cancel").click()
    ui.wait_until(lambda: "Cancelled: the job will not be sent" in ui.text, "the cancel's note")
    assert ui.find("h1 .state").text.endswith("cancelled")
    assert "cancel by tests" in ui.text
    job = pipeline.runtime.store.get_job(job_id)
    assert job is not None and (job.status, job.outcome) == ("failed", "cancelled")


def test_the_session_cookie_is_httponly_and_strict_and_a_wrong_key_signs_nobody_in(
    pipeline: Pipeline, serve: ServeFactory
) -> None:
    url = serve(pipeline.runtime)
    with httpx.Client(base_url=url) as client:
        first = client.get("/ui/jobs")
        assert first.status_code == 303
        assert first.headers["location"] == "/ui/login?next=%2Fui%2Fjobs"
        cookie = first.headers["set-cookie"].lower()
        form = client.get("/ui/login")
        assert "httponly" in cookie and "samesite=strict" in cookie and "path=/ui" in cookie
        assert "secure" not in cookie  # plain HTTP here; Secure under TLS
        csrf = form.text.split('name="csrf" value="')[1].split('"')[0]
        refused = client.post("/ui/login", data={"csrf": csrf, "key": LIMITED_KEY + "x"})
        assert refused.status_code == 401
        assert client.get("/ui/jobs").status_code == 303
        signed_in = client.post("/ui/login", data={"csrf": csrf, "key": LIMITED_KEY})
        assert signed_in.status_code == 303
        assert client.get("/ui/jobs").status_code == 200
        assert API_KEY not in signed_in.headers["set-cookie"]
        assert LIMITED_KEY not in signed_in.headers["set-cookie"]
        assert client.get("/ui/login?next=//elsewhere.example").headers["location"] == "/ui/jobs"


def test_without_api_keys_the_console_needs_no_sign_in(
    pipeline: Pipeline, serve: ServeFactory
) -> None:
    job_id = page(pipeline, "[P2] keyless")
    url = serve(with_keys(pipeline.runtime))
    with httpx.Client(base_url=url) as client:
        listing = client.get("/ui/jobs")
        assert listing.status_code == 200
        assert "[P2] keyless" in listing.text
        assert "Sign out" not in listing.text
        job = client.get(f"/ui/jobs/{job_id}")
        assert "Cancel this job" in job.text
        # Still a CSRF token: any web page the operator opens could post to loopback.
        assert client.post(f"/ui/jobs/{job_id}/cancel", data={}).status_code == 403
        csrf = job.text.split('name="csrf" value="')[1].split('"')[0]
        done = client.post(f"/ui/jobs/{job_id}/cancel", data={"csrf": csrf})
        assert done.status_code == 303
    job_now = pipeline.runtime.store.get_job(job_id)
    assert job_now is not None and job_now.outcome == "cancelled"
    assert "an operator" in (job_now.outcome_text or "")


def test_check_now_runs_on_a_worker_and_screenshots_of_the_console(
    pipeline: Pipeline, serve: ServeFactory, browser: BrowserFactory, tmp_path: Path
) -> None:
    """The three pages docs/console.md shows, from this run (make screenshots keeps them)."""
    delivered = [
        page(pipeline, "[P1] api-gateway 5xx rate above 5%", to="oncall@example.test"),
        page(pipeline, "[P2] db-01 replication lag 45s", to="dba@example.test"),
        page(pipeline, "[P3] disk 85% on web-02", to="ops@example.test"),
    ]
    pipeline.start_worker()
    pipeline.wait_final(*delivered)
    pipeline.server.fail_next("data", "554 5.2.252 SendAsDenied; not allowed to send as alerts")
    failed = page(pipeline, "[P1] payments: card auth failing", to="payments-oncall@example.test")
    pipeline.wait_final(failed)
    ui = browser(serve(pipeline.runtime))
    ui.sign_in(API_KEY)

    shots = tmp_path / "shots"
    shots.mkdir()
    ui.open("/ui/jobs")
    assert [s.text.split()[-1] for s in ui.all("tbody .state")] == [
        "failed", "delivered", "delivered", "delivered",
    ]  # fmt: skip
    ui.screenshot(shots / "console-jobs.png")
    ui.open(f"/ui/jobs/{failed}")
    assert "SendAsDenied" in ui.text
    assert "Delivered by" not in ui.text
    assert "message not delivered" in ui.find("table.plain").text
    ui.screenshot(shots / "console-failed-job.png")

    ui.open("/ui/profiles")
    card = ui.find("#profile-alerts")
    assert "healthy" in card.find_element("css selector", "h2 .state").text
    card.find_element("css selector", "button.check").click()
    ui.wait_until(lambda: ui.path.startswith("/ui/checks/"), "the check's page")
    ui.wait_until(
        lambda: ui.find("h1 .state").text.endswith("ok") and "auth" in ui.text,
        "the check, run by the worker",
    )
    assert [s.text for s in ui.all(".attempt-head b")] == ["token", "connect", "ehlo", "auth"]
    assert len(pipeline.server.messages) == 3  # a check sends nothing
    ui.open("/ui/profiles")
    ui.screenshot(shots / "console-profiles.png")

    ui.find("#profile-alerts input[name=send_to]").send_keys("me@example.test")
    ui.find("#profile-alerts button.send-test").click()
    # The page shows each step as it is recorded, and the state once the test has ended.
    ui.wait_until(
        lambda: (
            ui.find("h1 .state").text.endswith(("ok", "failed"))
            and "send" in [s.text for s in ui.all(".attempt-head b")]
        ),
        "the test, run by the worker",
    )
    assert ui.find("h1 .state").text.endswith("ok")
    assert pipeline.server.messages[-1].message["To"] == "me@example.test"

    for shot in sorted(shots.iterdir()):
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", shot
        if SCREENSHOTS:
            shutil.copy(shot, Path(SCREENSHOTS) / shot.name)
