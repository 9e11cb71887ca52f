"""The token endpoint's rules without a server: httpx's MockTransport answers (pure).

What is retried and for how long, what is handed back to the caller, what an
answer is parsed into, and what the request carries.
"""

from __future__ import annotations

import base64
import logging
import ssl
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme

from providers import (
    PermanentProviderError,
    RetryPolicy,
    TokenEndpoint,
    TransientProviderError,
    backoff,
    token_endpoint,
)
from providers.token_endpoint import (
    basic_authorization,
    certificate_error,
    error_details,
    parse_retry_after,
    parse_token_response,
    redact_url,
)
from tests.fakes.clock import Clock
from tests.fakes.idp_bodies import CORRELATION_ID, MS_BAD_SECRET, TRACE_ID

URL = "https://login.example.test/tenant/oauth2/v2.0/token"
TOKEN = {"access_token": "at-1", "token_type": "Bearer", "expires_in": 3600}

Answer = Callable[[httpx.Request], httpx.Response]


def answer(status: int, body: Any = None, **headers: str) -> Answer:
    def respond(request: httpx.Request) -> httpx.Response:
        if isinstance(body, str):
            return httpx.Response(status, text=body, headers=headers)
        return httpx.Response(status, json=body, headers=headers)

    return respond


@pytest.fixture(autouse=True)
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock(5000.0)
    monkeypatch.setattr(time, "monotonic", fake)
    return fake


def advance(seconds: float) -> None:
    clock = time.monotonic
    assert isinstance(clock, Clock)
    clock.now += seconds


class Endpoint:
    """A TokenEndpoint whose HTTP client answers from a script; sleeps and results noted.

    Each request takes ``request_seconds`` and each sleep its seconds, on the fake clock.
    """

    def __init__(
        self, *answers: Answer, policy: RetryPolicy | None = None, request_seconds: float = 0.0
    ) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []
        self.waits: list[float] = []
        self.results: list[tuple[str, str]] = []
        self.request_seconds = request_seconds
        self.http = httpx.Client(transport=httpx.MockTransport(self._answer), timeout=3.0)
        self.endpoint = TokenEndpoint(
            self.http,
            policy,
            sleep=self._sleep,
            on_result=lambda profile, result: self.results.append((profile, result)),
        )

    def _sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        advance(seconds)

    def _answer(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        advance(self.request_seconds)
        step = self.answers.pop(0) if self.answers else answer(200, TOKEN)
        return step(request)

    def request(self, **options: Any) -> token_endpoint.TokenResponse:
        options.setdefault("profile", "p")
        options.setdefault("grant", "client_credentials")
        return self.endpoint.request(URL, lambda: {"grant_type": "client_credentials"}, **options)


@pytest.fixture(autouse=True)
def largest_jitter(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every backoff at its ceiling, so that waits can be compared exactly."""

    def ceiling(attempt: int, **limits: float) -> float:
        return backoff.full_jitter(attempt, **limits, random_fraction=lambda: 1.0)

    monkeypatch.setattr(token_endpoint, "full_jitter", ceiling)


# -- what is retried --------------------------------------------------------------------


def test_temporarily_unavailable_on_a_4xx_is_retried() -> None:
    # RFC 6749 §5.2 allows the code on any 4xx; Entra ID sends it on a 400.
    ep = Endpoint(answer(400, {"error": "temporarily_unavailable"}))
    assert ep.request().token.access_token == "at-1"
    assert len(ep.requests) == 2
    assert ep.results == [("p", "transient"), ("p", "ok")]


def test_server_error_on_a_4xx_is_retried() -> None:
    ep = Endpoint(answer(400, {"error": "server_error"}))
    ep.request()
    assert len(ep.requests) == 2


def test_a_plain_500_without_an_oauth_body_is_transient() -> None:
    ep = Endpoint(*[answer(500, "<html>Internal Server Error</html>")] * 4)
    with pytest.raises(TransientProviderError) as caught:
        ep.request()
    assert caught.value.details == token_endpoint.OAuthErrorDetails(status=500)
    assert str(caught.value) == "profile 'p': token endpoint refused: HTTP 500"
    assert len(ep.requests) == RetryPolicy().max_attempts
    assert ep.waits == [0.5, 1.0, 2.0], "backoff doubles from the policy's base"


@pytest.mark.parametrize(("status", "retried"), [(429, True), (428, False), (499, False)])
def test_429_is_retried_and_other_4xx_are_not(status: int, retried: bool) -> None:
    ep = Endpoint(answer(status, {"error": "invalid_request"}))
    if retried:
        ep.request()
    else:
        with pytest.raises(PermanentProviderError):
            ep.request()
    assert len(ep.requests) == (2 if retried else 1)


def test_backoff_stops_at_the_policys_maximum() -> None:
    policy = RetryPolicy(max_attempts=6, backoff_base_seconds=1.0, backoff_max_seconds=3.0)
    ep = Endpoint(*[answer(503, {"error": "server_error"})] * 6, policy=policy)
    with pytest.raises(TransientProviderError):
        ep.request()
    assert ep.waits == [1.0, 2.0, 3.0, 3.0, 3.0]


# -- Retry-After -----------------------------------------------------------------------


def test_a_retry_after_up_to_the_maximum_is_waited_out() -> None:
    ep = Endpoint(answer(429, {"error": "too_many_requests"}, **{"Retry-After": "10"}))
    ep.request()
    assert ep.waits == [10.0]


def test_a_retry_after_between_the_maximum_and_the_deadline_is_handed_back() -> None:
    # 15 s fits in the 20 s deadline: only retry_after_max_seconds sends it back.
    ep = Endpoint(answer(429, {"error": "too_many_requests"}, **{"Retry-After": "15"}))
    with pytest.raises(TransientProviderError) as caught:
        ep.request()
    assert caught.value.retry_after_seconds == 15.0
    assert ep.waits == []
    assert len(ep.requests) == 1


def test_a_retry_after_of_zero_retries_at_once_within_a_short_deadline() -> None:
    policy = RetryPolicy(deadline_seconds=0.5)
    ep = Endpoint(answer(503, {"error": "server_error"}, **{"Retry-After": "0"}), policy=policy)
    ep.request()
    assert ep.waits == [0.0]


def test_a_backoff_that_reaches_the_deadline_exactly_is_not_waited() -> None:
    policy = RetryPolicy(deadline_seconds=0.5, backoff_base_seconds=0.5)
    ep = Endpoint(answer(503, {"error": "server_error"}), policy=policy)
    with pytest.raises(TransientProviderError):
        ep.request()
    assert (ep.waits, len(ep.requests)) == ([], 1)


def test_the_time_requests_take_counts_towards_the_deadline() -> None:
    # 0.4 s, wait 0.1, 0.4 s: 0.9 s gone, and the next wait (0.2) would end past 1 s.
    policy = RetryPolicy(deadline_seconds=1.0, backoff_base_seconds=0.1)
    ep = Endpoint(*[answer(503)] * 4, policy=policy, request_seconds=0.4)
    with pytest.raises(TransientProviderError):
        ep.request()
    assert (ep.waits, len(ep.requests)) == ([0.1], 2)


def test_a_backoff_that_would_pass_the_deadline_is_not_waited() -> None:
    policy = RetryPolicy(deadline_seconds=1.0, backoff_base_seconds=2.0, backoff_max_seconds=8.0)
    ep = Endpoint(answer(503, {"error": "server_error"}), policy=policy)
    with pytest.raises(TransientProviderError):
        ep.request()
    assert (ep.waits, len(ep.requests)) == ([], 1)


def test_max_attempts_counts_the_first_request() -> None:
    ep = Endpoint(*[answer(503)] * 5, policy=RetryPolicy(max_attempts=2))
    with pytest.raises(TransientProviderError):
        ep.request()
    assert len(ep.requests) == 2


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("60", 60.0), (" 7 ", 7.0), ("0", 0.0), ("", None), ("soon", None), ("-5", None),
     ("1.5", None), ("²", None)],
)  # fmt: skip
def test_retry_after_in_seconds(header: str, seconds: float | None) -> None:
    assert parse_retry_after(header) == seconds


def test_retry_after_as_an_http_date() -> None:
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0, "a past date: at once"
    before = time.time()
    when = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(before + 3600))
    seconds = parse_retry_after(when)
    after = time.time()
    assert seconds is not None
    assert 3600 - (after - before) - 1 <= seconds <= 3600


def test_a_retry_at_once_is_logged_with_no_wait(caplog: pytest.LogCaptureFixture) -> None:
    ep = Endpoint(answer(503, {"error": "server_error"}, **{"Retry-After": "0"}))
    with caplog.at_level(logging.WARNING, logger="providers.token_endpoint"):
        ep.request()
    (retry,) = [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()]
    assert retry.startswith("token request attempt 1 failed, retrying in 0.0s: ")


def test_the_retry_is_logged_as_a_warning_with_its_wait(caplog: pytest.LogCaptureFixture) -> None:
    ep = Endpoint(answer(429, {"error": "too_many_requests"}, **{"Retry-After": "3"}))
    with caplog.at_level(logging.WARNING, logger="providers.token_endpoint"):
        ep.request()
    (retry,) = [r for r in caplog.records if "retrying" in r.getMessage()]
    assert retry.levelno == logging.WARNING
    assert retry.getMessage().startswith(
        "token request attempt 1 failed, retrying in 3.0s: "
        "profile 'p': token endpoint refused: HTTP 429 too_many_requests — "
    )


# -- what is not retried -----------------------------------------------------------------


def test_a_refusal_keeps_microsofts_details_and_logs_them(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ep = Endpoint(answer(*MS_BAD_SECRET))
    with caplog.at_level(logging.WARNING), pytest.raises(PermanentProviderError) as caught:
        ep.request()
    assert ep.results == [("p", "permanent")]
    assert caught.value.details.error_codes == (7000215,)
    assert caught.value.profile == "p"
    assert "Value (not its Secret ID)" in (caught.value.hint or "")
    (line,) = [r.getMessage() for r in caplog.records if "failed" in r.getMessage()]
    assert line.startswith("token request for profile p failed: HTTP 401 invalid_client: AADSTS")
    assert line.endswith(
        f"(error_codes=[7000215] trace_id={TRACE_ID} correlation_id={CORRELATION_ID})"
    )


@pytest.mark.parametrize("body", [{"token_type": "Bearer"}, "<html>sign in</html>", [1]])
def test_a_200_without_an_access_token_is_a_configuration_error(body: Any) -> None:
    ep = Endpoint(answer(200, body))
    with pytest.raises(PermanentProviderError) as caught:
        ep.request()
    assert caught.value.message == "token endpoint answered 200 without an access_token"
    assert caught.value.hint == "check that token_url is the provider's OAuth 2.0 token endpoint"
    assert caught.value.details.status == 200
    assert caught.value.profile == "p"
    assert len(ep.requests) == 1


@pytest.mark.parametrize(
    ("grant", "hint"),
    [
        # The command to run names the profile ("p" here).
        ("refresh_token", "the user must sign in again: mailpipe oauth authorize p"),
        ("client_credentials", None),
    ],
)
def test_the_advice_depends_on_the_grant(grant: str, hint: str | None) -> None:
    ep = Endpoint(answer(400, {"error": "invalid_grant", "error_description": "expired"}))
    with pytest.raises(PermanentProviderError) as caught:
        ep.request(grant=grant)
    assert caught.value.hint == (f"the refresh token is no longer valid: {hint}" if hint else None)


def test_an_unreachable_endpoint_is_transient_and_named_without_secrets() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    ep = Endpoint(refuse, refuse, policy=RetryPolicy(max_attempts=2))
    with pytest.raises(TransientProviderError) as caught:
        ep.request()
    assert caught.value.message == f"token endpoint {URL} unreachable: ConnectError"
    assert caught.value.profile == "p"
    assert ep.results == [("p", "transient"), ("p", "transient")]


def test_an_untrusted_certificate_is_permanent_at_once() -> None:
    def untrusted(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[SSL: CERTIFICATE_VERIFY_FAILED] self-signed", request=request)

    ep = Endpoint(untrusted)
    with pytest.raises(PermanentProviderError) as caught:
        ep.request()
    assert caught.value.message == (
        f"certificate of token endpoint {URL} not trusted: certificate verify failed"
    )
    assert caught.value.hint == "set token_ca_file to the CA that signed it, or fix token_url"
    assert caught.value.profile == "p"
    assert ep.results == [("p", "permanent")]
    assert len(ep.requests) == 1


def verify_error(message: str | None, reason: str | None) -> ssl.SSLCertVerificationError:
    """As the ssl module raises it: with the verification's message and the reason."""
    error = ssl.SSLCertVerificationError(1, "certificate verify failed")
    error.verify_message, error.reason = message, reason
    return error


def test_certificate_errors_are_found_in_the_exception_chain() -> None:
    caused = httpx.ConnectError("handshake")
    caused.__cause__ = verify_error("self-signed certificate in chain", "CERTIFICATE_VERIFY_FAILED")
    assert certificate_error(caused) == "self-signed certificate in chain"
    during = httpx.ConnectError("handshake")
    during.__context__ = verify_error(None, "CERTIFICATE_VERIFY_FAILED")
    assert certificate_error(during) == "CERTIFICATE_VERIFY_FAILED"
    deeper = httpx.ConnectError("handshake")
    deeper.__cause__ = OSError("wrapped")
    deeper.__cause__.__context__ = verify_error("expired", None)
    assert certificate_error(deeper) == "expired"
    assert certificate_error(verify_error(None, None)) == "verification failed"
    assert certificate_error(httpx.ConnectError("refused")) is None


# -- what an answer is parsed into ---------------------------------------------------------


def parse(status: int, body: Any) -> token_endpoint.TokenResponse:
    response = httpx.Response(status, json=body)
    return parse_token_response(response, profile="p", grant="client_credentials")


def test_a_token_answer_with_everything() -> None:
    before = time.time()
    answer_ = parse(200, {**TOKEN, "expires_in": "120", "scope": "smtp", "refresh_token": "rt-2"})
    after = time.time()
    assert answer_.token.access_token == "at-1"
    assert before + 120 <= answer_.token.expires_at <= after + 120
    assert (answer_.token.token_type, answer_.token.scope) == ("Bearer", "smtp")
    assert answer_.refresh_token == "rt-2"


def test_a_token_answer_with_the_least() -> None:
    before = time.time()
    least = parse(200, {"access_token": 12345, "refresh_token": ""})
    after = time.time()
    assert least.token.access_token == "12345"
    assert before + 3600 <= least.token.expires_at <= after + 3600
    assert (least.token.token_type, least.token.scope) == ("Bearer", None)
    assert least.refresh_token is None, "none came back: the old one stays"
    assert parse(200, {"access_token": "a", "token_type": "mac"}).token.token_type == "mac"


@pytest.mark.parametrize("expires_in", ["soon", {"seconds": 60}, [60]])
def test_an_expires_in_that_is_no_number_gets_the_default_hour(expires_in: object) -> None:
    before = time.time()
    token = parse(200, {"access_token": "a", "expires_in": expires_in}).token
    after = time.time()
    assert before + 3600 <= token.expires_at <= after + 3600


def test_error_codes_that_are_not_numbers_do_not_break_the_parser() -> None:
    body = {
        "error": "invalid_grant",
        "error_codes": [70008, "50173", "AADSTS700082", "²", None, 1.5, "", -3],
    }
    assert error_details(400, body).error_codes == (70008, 50173)
    assert error_details(400, {"error": "x", "error_codes": 70008}).error_codes == ()
    assert error_details(400, {"error": "x", "error_codes": "700082"}).error_codes == ()
    with pytest.raises(PermanentProviderError) as caught:
        parse(400, body)
    assert caught.value.details.error_codes == (70008, 50173)


def test_error_fields_are_kept_as_text() -> None:
    details = error_details(
        400,
        {"error": "invalid_grant", "error_description": "expired", "trace_id": 7,
         "correlation_id": "c"},
    )  # fmt: skip
    assert details == token_endpoint.OAuthErrorDetails(
        status=400, error="invalid_grant", error_description="expired", trace_id="7",
        correlation_id="c",
    )  # fmt: skip
    assert error_details(502, None) == token_endpoint.OAuthErrorDetails(status=502)


# -- what the request carries --------------------------------------------------------------


def test_the_request_is_a_form_post_asking_for_json_with_a_fresh_form_each_time() -> None:
    ep = Endpoint(answer(503))
    forms = iter([{"n": "1"}, {"n": "2"}])
    ep.endpoint.request(URL, lambda: next(forms), profile="p", grant="client_credentials")
    assert [r.content for r in ep.requests] == [b"n=1", b"n=2"]
    assert all(r.method == "POST" and str(r.url) == URL for r in ep.requests)
    assert ep.requests[0].headers["Accept"] == "application/json"
    assert ep.requests[0].headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert "Authorization" not in ep.requests[0].headers


def test_client_authentication_is_basic_with_form_encoded_id_and_secret() -> None:
    ep = Endpoint()
    ep.request(basic_auth=("my app/1", "s3:cr+t%/"))
    header = ep.requests[0].headers["Authorization"]
    assert header == basic_authorization("my app/1", "s3:cr+t%/")
    scheme, encoded = header.split(" ")
    assert scheme == "Basic"
    assert base64.b64decode(encoded) == b"my%20app%2F1:s3%3Acr%2Bt%25%2F"


def test_urls_lose_user_info_and_query_values() -> None:
    assert redact_url("https://u:p@idp.example.test:8443/t?secret=x&a=") == (
        "https://idp.example.test:8443/t?secret=…&a=…"
    )
    assert redact_url("http://[::1]/token") == "http://[::1]/token"
    assert redact_url("https://idp.example.test/token#frag") == "https://idp.example.test/token"
    assert redact_url("token") == "token"


# -- clients for private certificate authorities ---------------------------------------


@pytest.fixture
def ca_file(tmp_path: Path) -> Iterator[str]:
    path = tmp_path / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(path))
    return str(path)


def test_a_private_ca_gets_a_client_of_its_own_with_the_shared_clients_timeout(
    ca_file: str,
) -> None:
    timeout = httpx.Timeout(4.0, connect=1.5)
    with httpx.Client(timeout=timeout) as shared:
        endpoint = TokenEndpoint(shared)
        assert endpoint.client(None) is shared
        private = endpoint.client(ca_file)
        assert private is not shared
        assert private.timeout == timeout
        assert endpoint.client(ca_file) is private, "one client per CA, kept"
        endpoint.close()
        assert private.is_closed
        assert not shared.is_closed, "the shared client belongs to the caller"
        assert endpoint.client(ca_file) is not private, "close forgets the closed ones"
        endpoint.close()
