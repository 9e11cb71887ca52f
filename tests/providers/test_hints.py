"""Advice for the errors users hit most (pure: no I/O)."""

from __future__ import annotations

import pytest

from providers.errors import OAuthErrorDetails
from providers.hints import hint_for


@pytest.mark.parametrize(
    ("details", "grant", "expected"),
    [
        (
            OAuthErrorDetails(401, "invalid_client", error_codes=(7000215,)),
            "client_credentials",
            "the client secret is wrong",
        ),
        (
            OAuthErrorDetails(401, "invalid_client", error_codes=(7000222,)),
            "client_credentials",
            "the client secret has expired",
        ),
        (
            OAuthErrorDetails(400, "unauthorized_client", error_codes=(700016,)),
            "client_credentials",
            "the application was not found in the tenant",
        ),
        (
            OAuthErrorDetails(401, "invalid_client", error_codes=(700027,)),
            "client_credentials",
            "the certificate assertion was rejected",
        ),
        (
            OAuthErrorDetails(400, "invalid_grant", error_codes=(700082,)),
            "refresh_token",
            "90 days without use",
        ),
        (
            OAuthErrorDetails(400, "invalid_grant", error_codes=(50173,)),
            "refresh_token",
            "the grant was revoked",
        ),
        (
            OAuthErrorDetails(400, "invalid_request", error_codes=(28000,)),
            "refresh_token",
            "more than one resource",
        ),
        (
            OAuthErrorDetails(400, "invalid_grant", "Token has been expired or revoked."),
            "refresh_token",
            "the Google OAuth app is in Testing: publish it",
        ),
        (
            OAuthErrorDetails(401, "unauthorized_client"),
            "service_account",
            "domain-wide delegation is missing",
        ),
        (
            OAuthErrorDetails(
                400,
                "invalid_grant",
                "Invalid JWT: Token must be a short-lived "
                "token (60 minutes) and in a reasonable timeframe.",
            ),
            "service_account",
            "clock is off",
        ),
        (
            OAuthErrorDetails(400, "invalid_grant", "Invalid JWT Signature."),
            "service_account",
            "download a new JSON key",
        ),
        (
            OAuthErrorDetails(400, "invalid_grant", "Not a valid email."),
            "service_account",
            "not a mailbox",
        ),
        (OAuthErrorDetails(429), "client_credentials", "throttling"),
        (
            OAuthErrorDetails(401, "invalid_client"),
            "client_credentials",
            "client ID or client secret is wrong",
        ),
    ],
)
def test_hint(details: OAuthErrorDetails, grant: str, expected: str) -> None:
    assert expected in (hint_for(details, grant=grant) or "")


def test_no_hint_for_unknown_errors() -> None:
    assert hint_for(OAuthErrorDetails(400, "access_denied"), grant="refresh_token") is None


def test_summary_is_one_line_without_microsoft_trailer() -> None:
    details = OAuthErrorDetails(
        401, "invalid_client", "AADSTS7000215: Invalid client secret.\r\nTrace ID: x\r\n"
    )
    assert details.summary() == "HTTP 401 invalid_client: AADSTS7000215: Invalid client secret."
