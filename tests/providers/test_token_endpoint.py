"""The shared token-endpoint client: what is retried, what is not, and how long it tries."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from pydantic import SecretStr

from providers import (
    ClientCredentialsGrant,
    PermanentProviderError,
    RetryPolicy,
    TokenEndpoint,
    TransientProviderError,
)
from providers.token_endpoint import parse_retry_after
from tests.fakes.idp import FakeIdP, issue, json_response, reply, slowly
from tests.fakes.idp_bodies import (
    CORRELATION_ID,
    MS_BAD_SECRET,
    MS_TEMPORARILY_UNAVAILABLE,
    TRACE_ID,
)
from tests.leaks import SecretRegistry
from tests.support import free_port

SECRET = "Zq8Q~client-secret-value-0123456789"


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=httpx.Timeout(2.0, connect=1.0)) as client:
        yield client


def grant(url: str) -> ClientCredentialsGrant:
    return ClientCredentialsGrant(
        name="m365",
        token_url=url,
        client_id="11111111-1111-1111-1111-111111111111",
        scope="https://outlook.office365.com/.default",
        client_secret=SecretStr(SECRET),
    )


class SleepRecorder:
    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def test_two_503s_then_success_takes_three_requests(idp: FakeIdP, http: httpx.Client) -> None:
    idp.then(reply(503, {"error": "server_error"}), reply(503, "Service Unavailable"))
    sleep = SleepRecorder()
    token = grant(idp.url).fetch(TokenEndpoint(http, sleep=sleep))
    assert token.access_token.startswith("eyJ0eXAi.")
    assert len(idp.requests) == 3
    assert len(sleep.waits) == 2
    assert all(0 <= w <= RetryPolicy().backoff_max_seconds for w in sleep.waits)


def test_temporarily_unavailable_is_retried(idp: FakeIdP, http: httpx.Client) -> None:
    idp.then(reply(*MS_TEMPORARILY_UNAVAILABLE))
    grant(idp.url).fetch(TokenEndpoint(http, sleep=SleepRecorder()))
    assert len(idp.requests) == 2


def test_429_waits_for_retry_after(idp: FakeIdP, http: httpx.Client) -> None:
    idp.then(reply(429, {"error": "too_many_requests"}, {"Retry-After": "3"}))
    sleep = SleepRecorder()
    grant(idp.url).fetch(TokenEndpoint(http, sleep=sleep))
    assert sleep.waits == [3.0]
    assert len(idp.requests) == 2


def test_429_with_long_retry_after_is_handed_back_to_the_caller(
    idp: FakeIdP, http: httpx.Client
) -> None:
    # Microsoft throttles client credentials with Retry-After: 60; that is for
    # the job to wait out, not a worker thread.
    idp.then(reply(429, {"error": "too_many_requests"}, {"Retry-After": "60"}))
    sleep = SleepRecorder()
    with pytest.raises(TransientProviderError) as caught:
        grant(idp.url).fetch(TokenEndpoint(http, sleep=sleep))
    assert caught.value.retry_after_seconds == 60.0
    assert sleep.waits == []
    assert len(idp.requests) == 1
    assert "throttling" in (caught.value.hint or "")


def test_invalid_client_fails_at_once_with_hint_and_microsoft_ids(
    idp: FakeIdP, http: httpx.Client, secrets: SecretRegistry
) -> None:
    idp.then(reply(*MS_BAD_SECRET))
    secrets.add(SECRET)
    with pytest.raises(PermanentProviderError) as caught:
        grant(idp.url).fetch(TokenEndpoint(http, sleep=SleepRecorder()))
    error = caught.value
    assert len(idp.requests) == 1
    assert error.details.status == 401
    assert error.details.error == "invalid_client"
    assert error.details.error_codes == (7000215,)
    assert error.details.trace_id == TRACE_ID
    assert error.details.correlation_id == CORRELATION_ID
    assert "Value (not its Secret ID)" in (error.hint or "")
    text = str(error)
    assert "\n" not in text
    assert text.startswith("profile 'm365': token endpoint refused: HTTP 401 invalid_client: ")
    secrets.assert_absent(text, repr(error))


def test_deadline_bounds_the_whole_request(idp: FakeIdP, http: httpx.Client) -> None:
    for _ in range(50):
        idp.then(slowly(0.2, reply(503, {"error": "server_error"})))
    policy = RetryPolicy(max_attempts=50, deadline_seconds=1.0, backoff_base_seconds=0.1)
    started = time.monotonic()
    with pytest.raises(TransientProviderError):
        grant(idp.url).fetch(TokenEndpoint(http, policy))
    elapsed = time.monotonic() - started
    # The last attempt may start just before the deadline and take 0.2 s.
    assert elapsed < 1.0 + 0.2 + 0.3
    assert 2 <= len(idp.requests) < 10


def test_max_attempts_bounds_retries(idp: FakeIdP, http: httpx.Client) -> None:
    for _ in range(10):
        idp.then(reply(500, {"error": "server_error"}))
    with pytest.raises(TransientProviderError):
        grant(idp.url).fetch(
            TokenEndpoint(http, RetryPolicy(max_attempts=3), sleep=SleepRecorder())
        )
    assert len(idp.requests) == 3


def test_unreachable_endpoint_is_transient(http: httpx.Client) -> None:
    url = f"http://127.0.0.1:{free_port()}/token"
    with pytest.raises(TransientProviderError, match="unreachable: ConnectError"):
        grant(url).fetch(TokenEndpoint(http, RetryPolicy(max_attempts=2), sleep=SleepRecorder()))


def test_timeout_is_transient(idp: FakeIdP) -> None:
    idp.then(slowly(1.0), slowly(1.0))
    with httpx.Client(timeout=0.2) as http, pytest.raises(TransientProviderError, match="Timeout"):
        grant(idp.url).fetch(
            TokenEndpoint(http, RetryPolicy(max_attempts=2), sleep=SleepRecorder())
        )


def test_html_page_instead_of_token_is_a_configuration_error(
    idp: FakeIdP, http: httpx.Client
) -> None:
    idp.then(lambda idp, form: json_response(200, "<html>sign in</html>"))
    with pytest.raises(PermanentProviderError, match="without an access_token") as caught:
        grant(idp.url).fetch(TokenEndpoint(http))
    assert "token_url" in (caught.value.hint or "")


def test_string_expires_in_is_accepted(idp: FakeIdP, http: httpx.Client) -> None:
    idp.then(
        lambda idp, form: json_response(200, {"access_token": "abcdefgh", "expires_in": "120"})
    )
    token = grant(idp.url).fetch(TokenEndpoint(http))
    assert 110 < token.expires_at - time.time() <= 120


def test_retry_after_parses_seconds_and_http_dates() -> None:
    assert parse_retry_after("60") == 60.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    future = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 30))
    assert 25 < (parse_retry_after(future) or 0) <= 30


def test_default_issue_step_is_used_after_the_script(idp: FakeIdP, http: httpx.Client) -> None:
    idp.then(issue(expires_in=100))
    endpoint = TokenEndpoint(http)
    first = grant(idp.url).fetch(endpoint)
    second = grant(idp.url).fetch(endpoint)
    assert first.expires_at < second.expires_at
