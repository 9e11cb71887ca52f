"""POST to an OAuth 2.0 token endpoint, with bounded retries and classified errors.

Shared by every grant. What is retried: network errors, timeouts, 5xx, 429 and
``temporarily_unavailable``. What is not: any other 4xx OAuth error, which
means the request itself is wrong (RFC 6749 §5.2) and must reach a person.
"""

from __future__ import annotations

import base64
import email.utils
import logging
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit, urlunsplit

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception_type

from providers.backoff import RetryPolicy, full_jitter
from providers.errors import (
    OAuthErrorDetails,
    PermanentProviderError,
    ProviderError,
    TransientProviderError,
)
from providers.hints import hint_for
from providers.token import Token

log = logging.getLogger(__name__)

# RFC 6749 recommends expires_in; a provider that leaves it out gets the
# common one-hour lifetime rather than a token cached forever.
DEFAULT_EXPIRES_IN_SECONDS = 3600
_TRANSIENT_OAUTH_ERRORS = frozenset({"temporarily_unavailable", "server_error"})


@dataclass(frozen=True)
class TokenResponse:
    """A successful token response; ``refresh_token`` is set when the server rotated it."""

    token: Token
    refresh_token: str | None = field(default=None, repr=False)


FormBuilder = Callable[[], Mapping[str, str]]


class TokenEndpoint:
    """Sends token requests through one HTTP client, retrying what is transient."""

    def __init__(
        self,
        http: httpx.Client,
        policy: RetryPolicy | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        on_result: Callable[[str, str], None] | None = None,
    ) -> None:
        self.http = http
        self._private: dict[str, httpx.Client] = {}
        self.policy = policy or RetryPolicy()
        self._sleep = sleep
        # Told (profile, "ok" | "transient" | "permanent") after every HTTP request.
        self._on_result = on_result or (lambda profile, result: None)

    def request(
        self,
        url: str,
        form: FormBuilder,
        *,
        profile: str,
        grant: str,
        basic_auth: tuple[str, str] | None = None,
        ca_file: str | None = None,
    ) -> TokenResponse:
        """POST the form built by ``form`` (called per attempt) and parse the answer.

        ``form`` is a callable so that signed assertions get a fresh ``jti``
        and ``iat`` on every attempt. ``ca_file``: the CA of a token endpoint
        with a private certificate authority.
        """
        retrying = Retrying(
            retry=retry_if_exception_type(TransientProviderError),
            wait=self._wait_seconds,
            stop=self._should_stop,
            sleep=self._sleep,
            before_sleep=self._log_retry,
            reraise=True,
        )
        result: TokenResponse = retrying(
            self._post_once,
            url,
            form,
            profile=profile,
            grant=grant,
            basic_auth=basic_auth,
            http=self.client(ca_file),
        )
        return result

    def close(self) -> None:
        """Close the clients made for private CAs (the shared one belongs to the caller)."""
        for client in self._private.values():
            client.close()
        self._private.clear()

    def client(self, ca_file: str | None) -> httpx.Client:
        """The HTTP client for a token endpoint with this CA (None: the system's)."""
        if ca_file is None:
            return self.http
        client = self._private.get(ca_file)
        if client is None:
            context = ssl.create_default_context(cafile=ca_file)
            client = self._private[ca_file] = httpx.Client(
                verify=context, timeout=self.http.timeout
            )
        return client

    def _post_once(
        self,
        url: str,
        form: FormBuilder,
        *,
        profile: str,
        grant: str,
        basic_auth: tuple[str, str] | None,
        http: httpx.Client,
    ) -> TokenResponse:
        headers = {"Accept": "application/json"}
        if basic_auth is not None:
            headers["Authorization"] = basic_authorization(*basic_auth)
        try:
            response = http.post(url, data=dict(form()), headers=headers)
        except httpx.TransportError as exc:
            untrusted = certificate_error(exc)
            if untrusted is not None:
                # Retrying cannot make a certificate trusted: a person must act.
                self._on_result(profile, "permanent")
                raise PermanentProviderError(
                    f"certificate of token endpoint {redact_url(url)} not trusted: {untrusted}",
                    profile=profile,
                    hint="set token_ca_file to the CA that signed it, or fix token_url",
                ) from exc
            self._on_result(profile, "transient")
            raise TransientProviderError(
                f"token endpoint {redact_url(url)} unreachable: {type(exc).__name__}",
                profile=profile,
            ) from exc
        try:
            parsed = parse_token_response(response, profile=profile, grant=grant)
        except ProviderError as exc:
            self._on_result(profile, exc.kind)
            raise
        self._on_result(profile, "ok")
        return parsed

    def _wait_seconds(self, state: RetryCallState) -> float:
        retry_after = _retry_after_of(state)
        if retry_after is not None:
            return retry_after
        return full_jitter(
            state.attempt_number,
            base_seconds=self.policy.backoff_base_seconds,
            max_seconds=self.policy.backoff_max_seconds,
        )

    def _should_stop(self, state: RetryCallState) -> bool:
        if state.attempt_number >= self.policy.max_attempts:
            return True
        retry_after = _retry_after_of(state)
        if retry_after is not None and retry_after > self.policy.retry_after_max_seconds:
            return True
        upcoming = state.upcoming_sleep or 0.0
        elapsed = state.seconds_since_start or 0.0
        return elapsed + upcoming >= self.policy.deadline_seconds

    @staticmethod
    def _log_retry(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.warning(
            "token request attempt %d failed, retrying in %.1fs: %s",
            state.attempt_number,
            state.upcoming_sleep or 0.0,
            exc,
        )


def redact_url(url: str) -> str:
    """The URL without what could be a secret: user info, and the query's values."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port:
        netloc += f":{parts.port}"
    query = "&".join(f"{name}=…" for name, _ in parse_qsl(parts.query, keep_blank_values=True))
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def certificate_error(exc: BaseException) -> str | None:
    """The verification message when ``exc`` came from an untrusted certificate."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return str(seen.verify_message or seen.reason or "verification failed")
        seen = seen.__cause__ or seen.__context__
    if "CERTIFICATE_VERIFY_FAILED" in str(exc):
        return "certificate verify failed"
    return None


def basic_authorization(client_id: str, client_secret: str) -> str:
    """The HTTP Basic header value for client authentication.

    RFC 6749 §2.3.1: id and secret are form-encoded before Basic encoding, which
    matters for secrets holding ``:``, ``+`` or ``%``.
    """
    pair = f"{quote(client_id, safe='')}:{quote(client_secret, safe='')}"
    return "Basic " + base64.b64encode(pair.encode()).decode()


def _retry_after_of(state: RetryCallState) -> float | None:
    exc = state.outcome.exception() if state.outcome else None
    if isinstance(exc, ProviderError):
        return exc.retry_after_seconds
    return None


def parse_token_response(response: httpx.Response, *, profile: str, grant: str) -> TokenResponse:
    """Turn a token endpoint's answer into a TokenResponse or one of our errors."""
    body = _json_object(response)
    if response.status_code == 200 and body is not None and "access_token" in body:
        return _token_response(body)
    details = error_details(response.status_code, body)
    hint = hint_for(details, grant=grant, profile=profile)
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    _log_failure(profile, details)
    if _is_transient(response.status_code, details.error):
        raise TransientProviderError(
            f"token endpoint refused: {details.summary()}",
            profile=profile,
            hint=hint,
            details=details,
            retry_after_seconds=retry_after,
        )
    if response.status_code == 200:
        raise PermanentProviderError(
            "token endpoint answered 200 without an access_token",
            profile=profile,
            hint="check that token_url is the provider's OAuth 2.0 token endpoint",
            details=details,
        )
    raise PermanentProviderError(
        f"token endpoint refused: {details.summary()}", profile=profile, hint=hint, details=details
    )


def _is_transient(status: int, error: str | None) -> bool:
    return status >= 500 or status == 429 or error in _TRANSIENT_OAUTH_ERRORS


def _json_object(response: httpx.Response) -> dict[str, Any] | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _token_response(body: Mapping[str, Any]) -> TokenResponse:
    # Microsoft's v1 endpoint sends expires_in as a string; accept both. One that is no
    # number gets the default rather than an error the callers do not expect.
    try:
        expires_in = float(body.get("expires_in") or DEFAULT_EXPIRES_IN_SECONDS)
    except (TypeError, ValueError):
        expires_in = DEFAULT_EXPIRES_IN_SECONDS
    token = Token(
        access_token=str(body["access_token"]),
        expires_at=time.time() + expires_in,
        token_type=str(body.get("token_type", "Bearer")),
        scope=body.get("scope"),
    )
    refresh = body.get("refresh_token")
    return TokenResponse(token=token, refresh_token=str(refresh) if refresh else None)


def error_details(status: int, body: Mapping[str, Any] | None) -> OAuthErrorDetails:
    if body is None:
        return OAuthErrorDetails(status=status)
    codes = body.get("error_codes")
    # isdecimal, not isdigit: "²" is a digit that int() refuses.
    numbers = [str(c) for c in codes if isinstance(c, int | str)] if isinstance(codes, list) else []
    return OAuthErrorDetails(
        status=status,
        error=_str_or_none(body.get("error")),
        error_description=_str_or_none(body.get("error_description")),
        error_codes=tuple(int(c) for c in numbers if c.isdecimal()),
        trace_id=_str_or_none(body.get("trace_id")),
        correlation_id=_str_or_none(body.get("correlation_id")),
    )


def _str_or_none(value: object) -> str | None:
    return None if value is None else str(value)


def _log_failure(profile: str, details: OAuthErrorDetails) -> None:
    log.warning(
        "token request for profile %s failed: %s (error_codes=%s trace_id=%s correlation_id=%s)",
        profile,
        details.summary(),
        list(details.error_codes),
        details.trace_id,
        details.correlation_id,
    )


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdecimal():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
