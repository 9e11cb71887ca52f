"""The benchmark's and the chaos run's token endpoints, on the one form-POST→JSON plumbing."""

from __future__ import annotations

from typing import Any

import httpx

from bench.chaos.token_endpoint import FlakyTokenEndpoint
from bench.run.servers import TokenServer
from tests.fakes.token_endpoint import FormTokenEndpoint


def post(url: str, form: str) -> tuple[int, dict[str, Any], dict[str, str]]:
    """POST a urlencoded form; (status, JSON body, headers)."""
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    response = httpx.post(url, content=form, headers=headers, timeout=5)
    return response.status_code, response.json(), dict(response.headers)


def test_the_endpoint_answers_what_its_callable_says_with_the_form_it_was_posted() -> None:
    seen: list[dict[str, str]] = []

    def answer(form: dict[str, str]) -> tuple[int, dict[str, Any], dict[str, str]]:
        seen.append(form)
        return 429, {"error": "slow_down"}, {"Retry-After": "3"}

    endpoint = FormTokenEndpoint(answer)
    try:
        status, body, headers = post(endpoint.url, "client_id=a&client_secret=s%26t")
    finally:
        endpoint.close()
    assert endpoint.url.endswith("/token")
    assert (status, body) == (429, {"error": "slow_down"})
    assert headers["retry-after"] == "3"
    assert headers["content-type"] == "application/json"
    assert seen == [{"client_id": "a", "client_secret": "s&t"}]


def test_the_bench_token_server_counts_each_client_and_issues_its_lifetime() -> None:
    tokens = TokenServer(lifetime_seconds=60)
    try:
        first = post(tokens.url, "client_id=a&grant_type=client_credentials")
        tokens.lifetime_seconds = 5  # a plan changes it between runs
        second = post(tokens.url, "client_id=a")
        post(tokens.url, "client_id=b")
    finally:
        tokens.close()
    assert [first[1]["expires_in"], second[1]["expires_in"]] == [60, 5]
    assert first[1]["access_token"] != second[1]["access_token"]
    assert tokens.requests == {"a": 2, "b": 1}
    assert len(tokens.times["a"]) == 2


def test_the_chaos_endpoint_throttles_refuses_and_issues_tokens_it_knows() -> None:
    tokens = FlakyTokenEndpoint({"a": "s"}, unavailable_fraction=0.0, seed=1)
    try:
        tokens.throttle_next(1, retry_after_seconds=7)
        throttled = post(tokens.url, "client_id=a&client_secret=s")
        refused = post(tokens.url, "client_id=a&client_secret=wrong")
        status, body, _ = post(tokens.url, "client_id=a&client_secret=s")
    finally:
        tokens.close()
    assert (throttled[0], throttled[2]["retry-after"]) == (429, "7")
    assert refused[:2] == (401, {"error": "invalid_client"})
    assert status == 200 and tokens.valid(body["access_token"])
    assert not tokens.valid("a token it never issued")
    assert tokens.counts == {"requests": 3, "429": 1, "401": 1, "issued": 1}


def test_the_chaos_endpoint_answers_503_for_its_unavailable_fraction() -> None:
    tokens = FlakyTokenEndpoint({"a": "s"}, unavailable_fraction=1.0, seed=1)
    try:
        status, body, _ = post(tokens.url, "client_id=a&client_secret=s")
    finally:
        tokens.close()
    assert (status, body) == (503, {"error": "temporarily_unavailable"})
