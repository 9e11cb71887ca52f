"""The sandbox's OAuth provider, on plain data: what each grant answers, and what it refuses."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography.fernet import Fernet

from providers.authorization import pkce_pair
from tests.fakes.clock import Clock
from worker.faces.sandbox_idp import (
    ACCESS_SECONDS,
    APP_CLIENT_ID,
    APP_CLIENT_SECRET,
    CODE_SECONDS,
    DEVICE_GRANT,
    SIGN_IN_CLIENT_ID,
    USER,
    SandboxIdP,
)

REDIRECT = "http://localhost:8400/"


@pytest.fixture
def clock() -> Clock:
    return Clock(1_800_000_000.0)


@pytest.fixture
def idp(clock: Clock) -> SandboxIdP:
    return SandboxIdP(Fernet.generate_key(), "http://127.0.0.1:8089", clock)


def _authorize(idp: SandboxIdP, challenge: str, **extra: str) -> dict[str, str]:
    query = {"client_id": SIGN_IN_CLIENT_ID, "response_type": "code", "redirect_uri": REDIRECT,
             "scope": "smtp.send offline_access", "state": "s1", "code_challenge": challenge,
             "code_challenge_method": "S256", **extra}  # fmt: skip
    status, location = idp.authorize(query)
    assert status == 302
    assert location.startswith(REDIRECT + "?")
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def _redeem(idp: SandboxIdP, code: str, verifier: str) -> tuple[int, dict[str, object]]:
    form = {"grant_type": "authorization_code", "client_id": SIGN_IN_CLIENT_ID}
    return idp.token(form | {"code": code, "redirect_uri": REDIRECT, "code_verifier": verifier})


def test_a_code_with_its_pkce_verifier_gives_tokens_for_the_one_user(idp: SandboxIdP) -> None:
    verifier, challenge = pkce_pair()
    back = _authorize(idp, challenge)
    assert back["state"] == "s1"
    status, body = _redeem(idp, back["code"], verifier)
    assert status == 200
    assert body["expires_in"] == ACCESS_SECONDS
    access, refresh = str(body["access_token"]), str(body["refresh_token"])
    assert idp.accepts(USER, access)
    assert not idp.accepts("alerts@sandbox.example", access), "a delegated token is its user's"
    assert not idp.accepts(USER, refresh), "a refresh token is no access token"
    status, again = _redeem(idp, back["code"], verifier)
    assert (status, again["error"]) == (400, "invalid_grant"), "a code is used once"


def test_a_code_is_refused_without_its_verifier_or_after_it_expired(
    idp: SandboxIdP, clock: Clock
) -> None:
    verifier, challenge = pkce_pair()
    wrong = _redeem(idp, _authorize(idp, challenge)["code"], pkce_pair()[0])
    assert wrong[1]["error_description"] == "code_verifier does not match code_challenge"
    code = _authorize(idp, challenge)["code"]
    clock.now += CODE_SECONDS + 1
    assert _redeem(idp, code, verifier)[1]["error"] == "invalid_grant"


def test_authorize_never_redirects_elsewhere_than_loopback(idp: SandboxIdP) -> None:
    query = {"client_id": SIGN_IN_CLIENT_ID, "redirect_uri": "https://evil.example/"}
    assert idp.authorize(query)[0] == 400
    assert idp.authorize({**query, "client_id": "nobody", "redirect_uri": REDIRECT})[0] == 400
    no_pkce = _authorize(idp, "", code_challenge_method="plain")
    assert no_pkce == {"state": "s1", "error": "invalid_request",
                       "error_description": "PKCE S256 is required"}  # fmt: skip


def test_a_refresh_answers_with_a_new_refresh_token(idp: SandboxIdP, clock: Clock) -> None:
    verifier, challenge = pkce_pair()
    first = _redeem(idp, _authorize(idp, challenge)["code"], verifier)[1]["refresh_token"]
    clock.now += 1
    form = {"grant_type": "refresh_token", "client_id": SIGN_IN_CLIENT_ID}
    status, body = idp.token({**form, "refresh_token": str(first)})
    assert status == 200
    assert body["refresh_token"] != first
    assert idp.accepts(USER, str(body["access_token"]))
    assert idp.token({**form, "refresh_token": "forged"})[1]["error"] == "invalid_grant"
    app = {**form, "client_id": APP_CLIENT_ID, "client_secret": APP_CLIENT_SECRET}
    assert idp.token({**app, "refresh_token": str(first)})[1]["error"] == "unauthorized_client"


def test_an_access_token_expires(idp: SandboxIdP, clock: Clock) -> None:
    form = {"grant_type": "client_credentials", "client_id": APP_CLIENT_ID,
            "client_secret": APP_CLIENT_SECRET, "scope": "smtp.send"}  # fmt: skip
    status, body = idp.token(form)
    assert status == 200
    assert "refresh_token" not in body
    token = str(body["access_token"])
    assert idp.accepts("anyone@sandbox.example", token), "app-only: any mailbox"
    clock.now += ACCESS_SECONDS + 1
    assert not idp.accepts("anyone@sandbox.example", token)


@pytest.mark.parametrize(
    ("client_id", "secret", "basic"),
    [
        (APP_CLIENT_ID, "wrong", False),
        (APP_CLIENT_ID, None, False),
        (SIGN_IN_CLIENT_ID, "a public client has none", False),
        ("nobody", None, False),
        (APP_CLIENT_ID, "wrong", True),
    ],
)
def test_clients_authenticate_as_registered(
    idp: SandboxIdP, client_id: str, secret: str | None, basic: bool
) -> None:
    form = {"grant_type": "client_credentials"}
    if basic:
        status, body = idp.token(form, (client_id, secret or ""))
    else:
        credentials = {"client_id": client_id} | ({"client_secret": secret} if secret else {})
        status, body = idp.token(form | credentials)
    assert (status, body["error"]) == (401, "invalid_client")
    assert idp.token(form, (APP_CLIENT_ID, APP_CLIENT_SECRET))[0] == 200


def test_the_device_grant_waits_for_the_code_to_be_entered(idp: SandboxIdP, clock: Clock) -> None:
    status, device = idp.device_code({"client_id": SIGN_IN_CLIENT_ID, "scope": "smtp.send"})
    assert status == 200
    assert device["verification_uri"] == "http://127.0.0.1:8089/device"
    poll = {"grant_type": DEVICE_GRANT, "client_id": SIGN_IN_CLIENT_ID,
            "device_code": str(device["device_code"])}  # fmt: skip
    assert idp.token(poll)[1]["error"] == "authorization_pending"
    assert not idp.approve("BCDF-GHJK" if device["user_code"] != "BCDF-GHJK" else "ZZZZ-ZZZZ")
    assert idp.approve(str(device["user_code"]).lower().replace("-", " "))
    status, body = idp.token(poll)
    assert status == 200
    assert idp.accepts(USER, str(body["access_token"]))
    assert idp.token(poll)[1]["error"] == "invalid_grant", "a device code is used once"

    late = idp.device_code({"client_id": SIGN_IN_CLIENT_ID})[1]
    clock.now += 901
    assert not idp.approve(str(late["user_code"]))
    expired = {**poll, "device_code": str(late["device_code"])}
    assert idp.token(expired)[1]["error"] == "expired_token"
