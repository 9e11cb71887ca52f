"""Each API key in its lane, through a real uvicorn: what a key may send, see and learn.

Tried as an attacker with one valid key would: another profile, another
route's recipients, another key's jobs, another key's idempotency key, a
body before the key, a browser's text/plain post, a batch made to be slow.
"""

from __future__ import annotations

import dataclasses
import importlib
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from pydantic import SecretStr

from tests.leaks import SecretRegistry
from tests.pipeline import API_KEY, Pipeline
from tests.support import free_port
from tests.worker.faces.http.conftest import Api, ServeFactory
from tests.worker.faces.http.samples import am_firing
from tests.worker.faces.http.test_api import notification, problem, subjects
from worker.faces.http import batch_rate
from worker.faces.http.keys import digest
from worker.intake import notify
from worker.queue import Producer, build_producer
from worker.settings import ApiKeySpec

HOOK = "/v1/webhooks/alertmanager"
# Keys besides the pipeline's own: what each is given.
LANES: dict[str, dict[str, Any]] = {
    "pager": {"routes": ["oncall", "retired"]},  # the docs' route-only key; "retired" is gone
    "decoy": {"profiles": ["alerts", "retired"]},  # another sender as the same profile
    "bare": {},  # given nothing
    "auditor": {"admin": True},  # reads every job, sends nothing
}
# A route whose templates read fields named like methods of str and dict.
TITLED_ROUTE = """
[routes.titled]
profile = "alerts"
to = ["ops@example.test"]
subject_template = "{{ payload.title }}"
text_template = "{{ payload.values }}"
"""


def key_of(name: str) -> str:
    return f"mp_lanes-{name}-key-0123456789abcdefghijklmnopqrstuvwxyz"


@dataclass
class Lanes:
    runtime: Producer
    clients: dict[str, httpx.Client]  # by key name; "tests" is the pipeline's own key

    def __getitem__(self, name: str) -> httpx.Client:
        return self.clients[name]

    def job_of(self, response: httpx.Response) -> str:
        assert response.status_code == 202, response.text
        job_id: str = response.json()["id"]
        return job_id


@pytest.fixture
def lanes(
    pipeline: Pipeline, serve: ServeFactory, secrets: SecretRegistry, tmp_path: Path
) -> Iterator[Lanes]:
    """``serve`` with the pipeline's keys and LANES', and the route above."""
    secrets.add(*(key_of(name) for name in LANES))
    profiles = tmp_path / "lanes.toml"
    profiles.write_text(pipeline.runtime.settings.profiles_file.read_text() + TITLED_ROUTE)
    specs = [ApiKeySpec(name=n, sha256=digest(key_of(n)), **given) for n, given in LANES.items()]
    settings = pipeline.runtime.settings.model_copy(
        update={
            "api_keys": (*pipeline.runtime.settings.api_keys, *specs),
            "profiles_file": profiles,
        }
    )
    runtime = build_producer(settings)
    url = serve(runtime)
    keys = {"tests": API_KEY} | {name: key_of(name) for name in LANES}
    clients = {
        name: httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30)
        for name, key in keys.items()
    }
    yield Lanes(runtime, clients)
    for client in clients.values():
        client.close()
    runtime.close()


# -- finding 1: a key reaches only what it was given ------------------------------------


def test_a_route_only_key_pages_its_route_and_reaches_nothing_else(
    lanes: Lanes, pipeline: Pipeline
) -> None:
    pager = lanes["pager"]
    page = lanes.job_of(pager.post(HOOK, params={"route": "oncall"}, json=am_firing()))

    job = pipeline.runtime.store.get_job(page)
    assert job is not None and job.recipients == ["oncall@example.test"]
    assert job.api_key_name == "pager", "the job records the key that made it"
    elsewhere = {"profile": "alerts", "to": ["attacker@example.test"]}
    refusals = [
        pager.post("/v1/notifications", json=notification(to=["attacker@example.test"])),
        pager.post(HOOK, params=elsewhere, json=am_firing()),
        pager.post("/v1/webhooks/json", params={"route": "script"}, json={"check": "x"}),
        pager.post(
            "/v1/notifications:batch",
            json={"profile": "alerts", "messages": [{"to": ["a@example.test"], "subject": "s",
                                                     "text": "t"}]},
        ),
    ]  # fmt: skip
    assert [r.status_code for r in refusals] == [403, 403, 403, 403], [r.text for r in refusals]
    assert pipeline.runtime.store.status_counts() == {"queued": 1}


def test_a_key_given_nothing_may_send_nothing(lanes: Lanes, pipeline: Pipeline) -> None:
    bare = lanes["bare"]
    refusals = [
        bare.post("/v1/notifications", json=notification()),
        bare.post(HOOK, params={"route": "oncall"}, json=am_firing()),
        bare.post(HOOK, params={"profile": "alerts", "to": "a@example.test"}, json=am_firing()),
    ]

    assert [r.status_code for r in refusals] == [403, 403, 403], [r.text for r in refusals]
    assert pipeline.runtime.store.status_counts() == {}


def test_a_key_sees_its_own_jobs_and_an_admin_key_sees_every_job(
    lanes: Lanes, pipeline: Pipeline
) -> None:
    jobs = {
        "tests": lanes.job_of(lanes["tests"].post("/v1/notifications", json=notification())),
        "pager": lanes.job_of(
            lanes["pager"].post(HOOK, params={"route": "oncall"}, json=am_firing())
        ),
        "decoy": lanes.job_of(lanes["decoy"].post("/v1/notifications", json=notification())),
        None: notify("alerts", to=["a@example.test"], subject="s", text="t",
                     runtime=pipeline.runtime),  # the CLI's and notify()'s: made with no key
    }  # fmt: skip

    for name in ("tests", "pager", "decoy", "bare", "auditor"):
        seen = {
            maker
            for maker, job_id in jobs.items()
            if lanes[name].get(f"/v1/notifications/{job_id}").status_code == 200
        }
        expected = set(jobs) if name == "auditor" else ({name} & set(jobs))
        assert seen == expected, name
    assert lanes["auditor"].post("/v1/notifications", json=notification()).status_code == 403


# -- finding 2: no key can take another key's idempotency key first ----------------------


def test_another_keys_idempotency_key_does_not_swallow_the_page(
    lanes: Lanes, pipeline: Pipeline
) -> None:
    pipeline.start_worker()
    headers = {"Idempotency-Key": "alertmanager:db-01:DiskFull"}
    decoy = lanes.job_of(
        lanes["decoy"].post(
            "/v1/notifications",
            json=notification(subject="nothing to see", to=["decoy@example.test"]),
            headers=headers,
        )
    )
    page = lanes.job_of(
        lanes["tests"].post("/v1/notifications", json=notification(), headers=headers)
    )
    again = lanes.job_of(
        lanes["tests"].post("/v1/notifications", json=notification(), headers=headers)
    )

    assert page != decoy
    assert again == page, "a key's own retry still returns its first job"
    pipeline.wait_final(decoy, page)
    assert sorted(subjects(pipeline)) == ["[P1] db-01 down", "nothing to see"]


# -- finding 6: the HTTP side -------------------------------------------------------------


def status_line(url: str, request: bytes) -> bytes:
    """The first line of the answer to a request sent as bytes (headers only, no body)."""
    address = urlsplit(url)
    with socket.create_connection((address.hostname, address.port), timeout=30) as sock:
        sock.sendall(request)
        return sock.makefile("rb").readline()


def test_a_body_is_not_read_before_the_key_is_checked(api: Api, pipeline: Pipeline) -> None:
    declared = pipeline.runtime.settings.api_max_body_bytes - 1000  # within the body limit
    for authorization in (b"", b"Authorization: Bearer mp_not-a-key\r\n"):
        request = (
            b"POST /v1/notifications HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\n" + authorization
            + b"Content-Length: %d\r\n\r\n" % declared
        )  # fmt: skip
        # No byte of the body is sent: an intake that waits for it never answers.
        assert status_line(api.url, request).startswith(b"HTTP/1.1 401"), authorization


def test_json_endpoints_refuse_other_content_types_even_without_keys(
    pipeline: Pipeline, serve: ServeFactory
) -> None:
    # A keyless intake on loopback: what a web page in a local browser can post to.
    keyless = pipeline.runtime.settings.model_copy(update={"api_keys": ()})
    runtime = build_producer(keyless)
    try:
        url = serve(runtime)
        hook = f"{url}/v1/webhooks/json?route=script"
        body = '{"check": "disk", "state": "critical"}'
        refused = [
            httpx.post(hook, content=body, headers={"Content-Type": "text/plain"}),
            httpx.post(hook, data={"check": "disk"}),
            httpx.post(hook, content=body),  # no Content-Type at all
            httpx.post(f"{url}/v1/notifications", content=body,
                       headers={"Content-Type": "text/plain;charset=UTF-8"}),
        ]  # fmt: skip
        for response in refused:
            assert "application/json" in str(problem(response, 415)["detail"])
        assert pipeline.runtime.store.status_counts() == {}
        typed = {"Content-Type": "application/json; charset=utf-8"}
        assert httpx.post(hook, content=body, headers=typed).status_code == 202
    finally:
        runtime.close()


def test_a_route_template_writes_the_payloads_fields_never_a_methods_repr(
    lanes: Lanes, pipeline: Pipeline
) -> None:
    pipeline.start_worker()
    hook = "/v1/webhooks/json"
    plain = lanes["tests"].post(
        hook,
        params={"route": "titled"},
        content="disk full",
        headers={"Content-Type": "text/plain"},
    )
    fields = lanes["tests"].post(
        hook, params={"route": "titled"}, json={"title": "Disk full", "values": [97, 98]}
    )
    string = lanes["tests"].post(hook, params={"route": "titled"}, json="a JSON string")

    assert plain.status_code == 415
    pipeline.wait_final(lanes.job_of(fields), lanes.job_of(string))
    texts = {m.message["Subject"]: m.message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
             for m in pipeline.server.messages}  # fmt: skip
    assert texts["Disk full"].strip() == "[97, 98]"
    # str.title is a method: the template fails, and the page goes out in the built-in form.
    assert texts["Webhook for route titled"].startswith("(mailpipe: this route's template failed")
    assert not any("0x" in subject + text for subject, text in texts.items())


def test_readiness_names_the_part_that_is_down_and_not_where_it_is(
    pipeline: Pipeline, serve: ServeFactory
) -> None:
    broker_port, database_port = free_port(), free_port()
    broken = pipeline.runtime.settings.model_copy(
        update={
            "broker_url": SecretStr(f"redis://127.0.0.1:{broker_port}/0"),
            "database_url": SecretStr(f"postgresql+psycopg://nobody@127.0.0.1:{database_port}/x"),
        }
    )
    runtime = build_producer(broken)
    try:
        ready = httpx.get(f"{serve(runtime)}/readyz", timeout=30)
        detail = str(problem(ready, 503)["detail"])
        assert detail == "database: not answering; broker: not answering"
    finally:
        runtime.close()


def test_a_422_names_only_the_routes_and_profiles_the_key_may_use(lanes: Lanes) -> None:
    retired_route = lanes["pager"].post(HOOK, params={"route": "retired"}, json=am_firing())
    assert problem(retired_route, 422)["detail"] == "unknown route 'retired' (routes: oncall)"
    # A route the key may not use is refused whether it exists or not: nothing to learn.
    for name in ("script", "no-such-route"):
        answer = lanes["pager"].post(HOOK, params={"route": name}, json=am_firing())
        assert problem(answer, 403)["detail"] == f"this API key may not use route '{name}'"
    retired_profile = lanes["decoy"].post("/v1/notifications", json=notification(profile="retired"))
    assert problem(retired_profile, 422)["detail"] == (
        "unknown profile 'retired' (profiles: alerts)"
    )


def test_a_batch_over_the_size_limit_is_refused_whole(api: Api, pipeline: Pipeline) -> None:
    limit = pipeline.runtime.settings.api_max_batch_messages
    message = {"to": ["a@example.test"], "subject": "s", "text": "t"}
    body = {"profile": "alerts", "messages": [message] * (limit + 1)}

    refused = problem(api.client.post("/v1/notifications:batch", json=body), 422)

    assert refused["field"] == "messages"
    assert "MAILPIPE_API_MAX_BATCH_MESSAGES" in str(refused["detail"])
    assert pipeline.runtime.store.status_counts() == {}


def test_a_bad_last_message_fails_a_batch_before_any_message_is_built(
    api: Api, pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The module, not the function of the same name that worker.intake exports.
    module = importlib.import_module("worker.intake.notify")
    built: list[str] = []
    build = module.build_message

    def counted(*args: Any, **kwargs: Any) -> Any:
        built.append(kwargs["job_id"])
        return build(*args, **kwargs)

    monkeypatch.setattr(module, "build_message", counted)
    good = {"to": ["a@example.test"], "subject": "s", "text": "t"}
    messages = [good] * 499 + [{**good, "to": ["oncall@@example"]}]

    found = problem(
        api.client.post(
            "/v1/notifications:batch", json={"profile": "alerts", "messages": messages}
        ),
        422,
    )

    assert found["field"] == "messages[499].to"
    assert built == []
    assert pipeline.runtime.store.status_counts() == {}


def test_one_key_cannot_queue_more_batch_messages_a_minute_than_its_share(
    pipeline: Pipeline, serve: ServeFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The clock stands still 10.5 s into a minute, so no window ends between the posts.
    monkeypatch.setattr(batch_rate, "time", SimpleNamespace(time=lambda: 60 * 16_667 + 10.5))
    # Three a minute per key here; two keys that may both send as "alerts".
    other_key = "mp_second-batch-key-0123456789abcdefghijklmnopqrstuvw"
    keys = (
        ApiKeySpec(name="tests", sha256=digest(API_KEY), profiles=("*",)),
        ApiKeySpec(name="second", sha256=digest(other_key), profiles=("alerts",)),
    )
    settings = pipeline.runtime.settings.model_copy(
        update={"api_keys": keys, "api_batch_messages_per_minute": 3}
    )
    url = serve(dataclasses.replace(pipeline.runtime, settings=settings))
    message = {"to": ["a@example.test"], "subject": "s", "text": "t"}
    body = {"profile": "alerts", "messages": [message, message]}

    def post(key: str) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key}"}
        return httpx.post(f"{url}/v1/notifications:batch", json=body, headers=headers, timeout=30)

    assert post(API_KEY).status_code == 202
    over = post(API_KEY)  # 4 of 3: refused whole, and it does not count
    refused = problem(over, 429)
    assert "MAILPIPE_API_BATCH_MESSAGES_PER_MINUTE" in str(refused["detail"])
    assert over.headers["Retry-After"] == "50"  # the rest of the minute
    assert post(other_key).status_code == 202  # another key's lane is its own
    assert pipeline.runtime.store.status_counts() == {"queued": 4}
