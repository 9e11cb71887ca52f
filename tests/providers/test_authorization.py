"""Signing in: PKCE and state, the redirect, the device grant, in Microsoft's shapes."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from providers import PermanentProviderError, TokenEndpoint
from providers.authorization import (
    AuthorizationClient,
    code_from_redirect,
    exchange_code,
    pkce_pair,
    poll_device_authorization,
    start_authorization,
    start_device_authorization,
)
from tests.fakes.browser import redirect_of, sign_in
from tests.fakes.clock import Clock
from tests.fakes.login import CLIENT_ID, FakeLogin
from tests.fakes.smtp_tls import TlsFiles

REDIRECT = "http://localhost:53682/"
SCOPE = "https://outlook.office.com/SMTP.Send offline_access"


@pytest.fixture
def endpoint() -> Iterator[TokenEndpoint]:
    http = httpx.Client(timeout=10)
    yield TokenEndpoint(http)
    http.close()


@pytest.fixture
def client(login: FakeLogin, tls: TlsFiles) -> AuthorizationClient:
    return AuthorizationClient(
        name="delegated",
        client_id=CLIENT_ID,
        scope=SCOPE,
        token_url=login.url("token"),
        authorize_url=login.url("authorize"),
        device_authorization_url=login.url("devicecode"),
        ca_file=str(tls.ca_pem),
    )


def browse(url: str, tls: TlsFiles) -> str:
    return redirect_of(url, tls.ca_pem)


def test_the_verifier_and_challenge_follow_rfc_7636() -> None:
    verifier, challenge = pkce_pair()
    assert 43 <= len(verifier) <= 128
    assert set(verifier) <= set(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
    )
    digest = hashlib.sha256(verifier.encode()).digest()
    assert challenge == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert pkce_pair()[0] != verifier


def test_a_sign_in_returns_a_refresh_token_for_a_pkce_checked_code(
    login: FakeLogin, client: AuthorizationClient, endpoint: TokenEndpoint, tls: TlsFiles
) -> None:
    request = start_authorization(client, REDIRECT)
    query = parse_qs(urlsplit(request.url).query)
    assert query["code_challenge_method"] == ["S256"]
    assert query["response_type"] == ["code"]
    assert query["scope"] == [SCOPE]
    assert request.verifier not in request.url  # only its challenge travels
    code = code_from_redirect(client, request, browse(request.url, tls))
    response = exchange_code(endpoint, client, request, code)
    assert response.refresh_token == login.idp.issued_refresh_tokens[0]
    assert login.idp.requests[-1].form["code_verifier"] == request.verifier


def test_a_code_redeemed_with_another_verifier_is_refused(
    login: FakeLogin, client: AuthorizationClient, endpoint: TokenEndpoint, tls: TlsFiles
) -> None:
    request = start_authorization(client, REDIRECT)
    code = code_from_redirect(client, request, browse(request.url, tls))
    stolen = start_authorization(client, REDIRECT)  # an attacker's own verifier
    with pytest.raises(PermanentProviderError, match="AADSTS501481"):
        exchange_code(endpoint, client, stolen, code)


def test_a_redirect_of_another_sign_in_is_refused_by_its_state(
    client: AuthorizationClient, tls: TlsFiles
) -> None:
    first = start_authorization(client, REDIRECT)
    second = start_authorization(client, REDIRECT)
    with pytest.raises(PermanentProviderError, match="state does not match"):
        code_from_redirect(client, second, browse(first.url, tls))


@pytest.mark.parametrize(
    ("user", "error", "hint"),
    [
        ("decline", "access_denied", None),
        ("consent_required", "consent_required", "administrator must grant consent"),
    ],
)
def test_a_refused_sign_in_names_microsofts_reason_and_hint(
    login: FakeLogin,
    client: AuthorizationClient,
    tls: TlsFiles,
    user: str,
    error: str,
    hint: str | None,
) -> None:
    login.user = user  # type: ignore[assignment]
    request = start_authorization(client, REDIRECT)
    with pytest.raises(PermanentProviderError) as caught:
        code_from_redirect(client, request, browse(request.url, tls))
    assert f"sign-in refused: {error}: AADSTS" in str(caught.value)
    assert (caught.value.hint is None) if hint is None else (hint in (caught.value.hint or ""))


def test_an_unregistered_redirect_uri_gets_microsofts_page_and_the_hint_says_what_to_add(
    client: AuthorizationClient, tls: TlsFiles
) -> None:
    """Microsoft shows AADSTS50011 on its own page; our hint for it names the redirect to add."""
    request = start_authorization(client, "https://app.example/callback")
    status, page = sign_in(request.url, tls.ca_pem)
    assert status == 400
    assert "AADSTS50011" in page
    from providers.errors import OAuthErrorDetails
    from providers.hints import hint_for

    advice = hint_for(OAuthErrorDetails(error_codes=(50011,)), grant="authorization_code")
    assert advice is not None
    assert "http://localhost:PORT" in advice


def test_the_device_grant_polls_at_the_interval_and_slows_down_when_told(
    login: FakeLogin, client: AuthorizationClient, endpoint: TokenEndpoint
) -> None:
    login.device_answers.extend(["pending", "slow_down", "pending"])
    device = start_device_authorization(endpoint, client)
    assert device.verification_uri == "https://microsoft.com/devicelogin"
    assert device.user_code in (device.message or "")
    clock = Clock()
    response = poll_device_authorization(endpoint, client, device, sleep=clock.sleep, clock=clock)
    assert response.refresh_token == login.idp.issued_refresh_tokens[0]
    assert clock.sleeps == [5, 5, 10, 10]  # RFC 8628 §3.5: 5 s more after slow_down
    assert login.device_requests[0]["scope"] == SCOPE


@pytest.mark.parametrize(
    ("answers", "message"),
    [
        (["pending", "decline"], "the sign-in was declined"),
        (["pending", "expired"], "the device code expired before the sign-in was approved"),
    ],
)
def test_the_device_grant_stops_when_declined_or_expired(
    login: FakeLogin,
    client: AuthorizationClient,
    endpoint: TokenEndpoint,
    answers: list[str],
    message: str,
) -> None:
    login.device_answers.extend(answers)  # type: ignore[arg-type]
    device = start_device_authorization(endpoint, client)
    clock = Clock()
    with pytest.raises(PermanentProviderError, match=message):
        poll_device_authorization(endpoint, client, device, sleep=clock.sleep, clock=clock)
    assert len(clock.sleeps) == 2


def test_the_device_grant_gives_up_when_the_code_outlives_its_expiry(
    login: FakeLogin, client: AuthorizationClient, endpoint: TokenEndpoint
) -> None:
    login.device_answers.extend(["pending"] * 500)
    device = start_device_authorization(endpoint, client)
    clock = Clock()
    with pytest.raises(PermanentProviderError, match="expired before the sign-in"):
        poll_device_authorization(endpoint, client, device, sleep=clock.sleep, clock=clock)
    assert clock.now == pytest.approx(900, abs=5)  # expires_in, at 5 s a poll
