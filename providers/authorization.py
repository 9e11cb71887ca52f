"""Getting a user's first refresh token: authorization code + PKCE, or the device grant.

Authorization code (RFC 6749 §4.1) with PKCE S256 (RFC 7636) and ``state``; the
redirect goes to a loopback URI (RFC 8252 §7.3). Device authorization grant
(RFC 8628): poll at the server's interval, 5 s slower on ``slow_down``, until
the user approves, declines or the code expires. The refresh token goes to the
profile's ``RefreshTokenStore``, where rotated ones go.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
from pydantic import SecretStr

from providers.errors import OAuthErrorDetails, PermanentProviderError, ProviderError
from providers.hints import hint_for
from providers.token_endpoint import TokenEndpoint, TokenResponse, error_details, redact_url

DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
_AADSTS = re.compile(r"AADSTS(\d+)")


@dataclass(frozen=True)
class AuthorizationClient:
    """The app a user signs in to, as a profile describes it."""

    name: str  # the profile
    client_id: str
    scope: str
    token_url: str
    authorize_url: str | None = None
    device_authorization_url: str | None = None
    client_secret: SecretStr | None = field(default=None, repr=False)
    # Provider-specific: Google needs access_type=offline and prompt=consent.
    authorize_params: Mapping[str, str] = field(default_factory=dict)
    ca_file: str | None = None


@dataclass(frozen=True)
class AuthorizationRequest:
    """One sign-in in progress: the URL to open, and what checks the redirect."""

    url: str
    redirect_uri: str
    state: str = field(repr=False)
    verifier: str = field(repr=False)


@dataclass(frozen=True)
class DeviceCode:
    """What the user is shown (the code and where to enter it) and what is polled with."""

    user_code: str
    verification_uri: str
    interval: float
    expires_in: float
    message: str | None
    device_code: str = field(repr=False)


def pkce_pair() -> tuple[str, str]:
    """A code verifier (43-128 unreserved characters) and its S256 challenge."""
    verifier = secrets.token_urlsafe(64)  # 86 characters
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def start_authorization(client: AuthorizationClient, redirect_uri: str) -> AuthorizationRequest:
    """The authorize URL for ``client``, with a fresh PKCE verifier and state."""
    if client.authorize_url is None:
        raise PermanentProviderError(
            "no authorization endpoint for this profile",
            profile=client.name,
            hint="set authorize_url in the profile (the provider's OAuth 2.0 authorize URL)",
        )
    verifier, challenge = pkce_pair()
    state = secrets.token_urlsafe(24)
    query = {
        "client_id": client.client_id,
        "response_type": "code",
        "redirect_uri": redirect_uri,
        "scope": client.scope,
        "state": state,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **client.authorize_params,
    }
    url = f"{client.authorize_url}?{urlencode(query)}"
    return AuthorizationRequest(url, redirect_uri, state, verifier)


def code_from_redirect(
    client: AuthorizationClient, request: AuthorizationRequest, redirected: str
) -> str:
    """The authorization code in the URL the browser was sent back to, once ``state`` matches."""
    query = parse_qs(urlsplit(redirected.strip()).query)
    values = {k: v[0] for k, v in query.items() if v}
    if values.get("state") != request.state:
        raise PermanentProviderError(
            "the redirect's state does not match this sign-in: not the URL of this attempt",
            profile=client.name,
            hint="run mailpipe oauth authorize again and use the URL it prints",
        )
    if "error" in values:
        description = values.get("error_description", "")
        details = OAuthErrorDetails(
            error=values["error"],
            error_description=description,
            error_codes=tuple(int(c) for c in _AADSTS.findall(description)),
        )
        raise PermanentProviderError(
            f"sign-in refused: {details.summary()}",
            profile=client.name,
            hint=hint_for(details, grant="authorization_code"),
            details=details,
        )
    code = values.get("code")
    if not code:
        raise PermanentProviderError(
            "the redirect carries no authorization code", profile=client.name
        )
    return code


def exchange_code(
    endpoint: TokenEndpoint,
    client: AuthorizationClient,
    request: AuthorizationRequest,
    code: str,
) -> TokenResponse:
    """Redeem the code (with the PKCE verifier) for tokens; a refresh token must come back."""
    form = {
        "grant_type": "authorization_code",
        "client_id": client.client_id,
        "code": code,
        "redirect_uri": request.redirect_uri,
        "code_verifier": request.verifier,
        "scope": client.scope,
    }
    return _with_refresh_token(client, _request_tokens(endpoint, client, form))


def start_device_authorization(endpoint: TokenEndpoint, client: AuthorizationClient) -> DeviceCode:
    """Ask for a device code and the code the user enters (RFC 8628 §3.1-3.2)."""
    if client.device_authorization_url is None:
        raise PermanentProviderError(
            "no device authorization endpoint for this profile",
            profile=client.name,
            hint="set device_authorization_url in the profile, or sign in without --device",
        )
    form = {"client_id": client.client_id, "scope": client.scope}
    if client.client_secret is not None:
        form["client_secret"] = client.client_secret.get_secret_value()
    url = client.device_authorization_url
    try:
        response = endpoint.client(client.ca_file).post(
            url, data=form, headers={"Accept": "application/json"}
        )
    except httpx.TransportError as exc:
        raise PermanentProviderError(
            f"device authorization endpoint {redact_url(url)} unreachable: {type(exc).__name__}",
            profile=client.name,
        ) from exc
    body = _json(response)
    if response.status_code != 200 or body is None or "device_code" not in body:
        details = error_details(response.status_code, body)
        raise PermanentProviderError(
            f"device authorization refused: {details.summary()}",
            profile=client.name,
            hint=hint_for(details, grant="device_code"),
            details=details,
        )
    return DeviceCode(
        user_code=str(body["user_code"]),
        # RFC 8628 says verification_uri; Google's older answers say verification_url.
        verification_uri=str(body.get("verification_uri") or body.get("verification_url")),
        interval=float(body.get("interval") or 5),
        expires_in=float(body.get("expires_in") or 900),
        message=str(body["message"]) if body.get("message") else None,
        device_code=str(body["device_code"]),
    )


def poll_device_authorization(
    endpoint: TokenEndpoint,
    client: AuthorizationClient,
    device: DeviceCode,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> TokenResponse:
    """Poll until the user approved (tokens), declined or let the code expire (errors)."""
    form = {"grant_type": DEVICE_CODE_GRANT, "client_id": client.client_id,
            "device_code": device.device_code}  # fmt: skip
    interval = device.interval
    give_up_at = clock() + device.expires_in
    while True:
        sleep(interval)
        try:
            return _with_refresh_token(client, _request_tokens(endpoint, client, form))
        except ProviderError as exc:
            error = exc.details.error
            if error == "authorization_pending" and clock() < give_up_at:
                continue
            if error == "slow_down" and clock() < give_up_at:
                interval += 5  # RFC 8628 §3.5
                continue
            if error in ("authorization_pending", "slow_down", "expired_token"):
                raise PermanentProviderError(
                    "the device code expired before the sign-in was approved",
                    profile=client.name,
                    hint="run mailpipe oauth authorize --device again and enter the new code",
                    details=exc.details,
                ) from None
            if error in ("access_denied", "authorization_declined"):
                raise PermanentProviderError(
                    "the sign-in was declined", profile=client.name, details=exc.details
                ) from None
            raise


def _request_tokens(
    endpoint: TokenEndpoint, client: AuthorizationClient, form: Mapping[str, str]
) -> TokenResponse:
    full = dict(form)
    if client.client_secret is not None:
        full["client_secret"] = client.client_secret.get_secret_value()
    grant = form["grant_type"]
    return endpoint.request(
        client.token_url, lambda: full, profile=client.name, grant=grant, ca_file=client.ca_file
    )


def _with_refresh_token(client: AuthorizationClient, response: TokenResponse) -> TokenResponse:
    if response.refresh_token is None:
        raise PermanentProviderError(
            "the provider issued no refresh token",
            profile=client.name,
            hint="the scope must include offline_access (Microsoft), or access_type=offline "
            "with prompt=consent (Google)",
        )
    return response


def _json(response: httpx.Response) -> dict[str, Any] | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None
