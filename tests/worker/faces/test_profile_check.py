"""`mailpipe profiles check` against the real test SMTP server and token endpoint."""

from __future__ import annotations

import pytest

from tests.fakes.idp import FakeIdP
from tests.fakes.smtp_server import ServerFactory
from tests.worker.conftest import CredentialsFactory
from worker.faces.profile_check import check_profile

EXCHANGE_APP_CLAIMS = {
    "aud": "https://outlook.office365.com",
    "roles": ["SMTP.SendAsApp"],
    "tid": "00000000-0000-0000-0000-000000000000",
    "sub": "service-principal-object-id",
    "appid": "11111111-1111-1111-1111-111111111111",
}


def test_every_step_passes_and_a_test_message_is_sent(
    make_server: ServerFactory, make_credentials: CredentialsFactory, idp: FakeIdP
) -> None:
    idp.claims = EXCHANGE_APP_CLAIMS
    server = make_server()
    credentials = make_credentials(server)
    steps = list(check_profile(credentials, "p", send_to="oncall@example.test"))
    assert [(s.name, s.ok) for s in steps] == [
        ("token", True),
        ("connect", True),
        ("ehlo", True),
        ("auth", True),
        ("send", True),
    ]
    assert "aud=https://outlook.office365.com" in steps[0].detail
    assert "roles=SMTP.SendAsApp" in steps[0].detail
    assert idp.issued_access_tokens[0] not in " ".join(s.detail for s in steps)
    assert "certificate verified" in steps[1].detail
    assert "AUTH" in steps[2].detail and "XOAUTH2" in steps[2].detail
    assert steps[3].detail == "XOAUTH2 as alerts@example.test"
    assert server.messages[0].rcpt_tos == ["oncall@example.test"]


@pytest.mark.parametrize(
    ("claims", "hint"),
    [
        ({**EXCHANGE_APP_CLAIMS, "aud": "https://graph.microsoft.com"}, "for Microsoft Graph"),
        ({**EXCHANGE_APP_CLAIMS, "roles": ["Mail.Send"]}, "no SMTP.SendAsApp role"),
    ],
)
def test_a_wrong_microsoft_token_is_called_out_before_smtp(
    claims: dict[str, object],
    hint: str,
    make_server: ServerFactory,
    make_credentials: CredentialsFactory,
    idp: FakeIdP,
) -> None:
    idp.claims = claims
    server = make_server()
    credentials = make_credentials(
        server, provider="microsoft365", tenant="contoso.onmicrosoft.com"
    )
    steps = list(check_profile(credentials, "p"))
    assert [(s.name, s.ok) for s in steps] == [("token", False)]
    assert hint in (steps[0].hint or "")
    assert server.sessions == [], "SMTP is not tried with a token that cannot work"


def test_an_auth_failure_stops_with_the_reason(
    make_server: ServerFactory, make_credentials: CredentialsFactory, idp: FakeIdP
) -> None:
    idp.claims = EXCHANGE_APP_CLAIMS
    server = make_server(token_ok=lambda user, token: False, gmail_style_failure=False)
    microsoft = make_credentials(server, provider="microsoft365", tenant="contoso.onmicrosoft.com")
    steps = list(check_profile(microsoft, "p"))
    assert [(s.name, s.ok) for s in steps][-1] == ("auth", False)
    assert "535 5.7.3" in steps[-1].detail
    assert "service principal" in (steps[-1].hint or "")
    assert "service principal" not in steps[-1].detail, "the hint is said once"


def test_a_generic_servers_refusal_gets_no_provider_advice(
    make_server: ServerFactory, make_credentials: CredentialsFactory
) -> None:
    # Gmail's style of refusal (a JSON 334, then 535 5.7.8) from a server that is not Gmail.
    server = make_server(token_ok=lambda user, token: False)
    steps = list(check_profile(make_credentials(server), "p"))
    assert [(s.name, s.ok) for s in steps][-1] == ("auth", False)
    assert "535 5.7.8" in steps[-1].detail
    assert steps[-1].hint is None, "nothing is known about this server's reasons"
