"""`mailpipe profiles check` for a Graph profile: Graph's token claims, then one sendMail."""

from __future__ import annotations

import pytest

from tests.fakes.graph import ACCESS_DENIED, FakeGraph
from tests.fakes.idp import FakeIdP
from tests.worker.conftest import CredentialsFactory
from worker.faces.profile_check import check_profile

GRAPH_APP_CLAIMS = {
    "aud": "https://graph.microsoft.com",
    "roles": ["Mail.Send"],
    "tid": "00000000-0000-0000-0000-000000000000",
    "appid": "11111111-1111-1111-1111-111111111111",
}


def test_a_graph_profile_shows_its_claims_and_sends_a_test_message(
    graph: FakeGraph, graph_credentials: CredentialsFactory, idp: FakeIdP
) -> None:
    idp.claims = GRAPH_APP_CLAIMS
    steps = list(check_profile(graph_credentials(), "p", send_to="oncall@example.test"))
    assert [(s.name, s.ok) for s in steps] == [("token", True), ("send", True)]
    assert "roles=Mail.Send" in steps[0].detail
    assert steps[1].detail == "delivered at data: 202 Accepted"
    (sent,) = graph.sent
    assert sent.message["To"] == "oncall@example.test"


def test_without_send_to_it_says_where_it_would_send(
    graph: FakeGraph, graph_credentials: CredentialsFactory, idp: FakeIdP
) -> None:
    idp.claims = GRAPH_APP_CLAIMS
    steps = list(check_profile(graph_credentials(), "p"))
    assert [(s.name, s.ok) for s in steps] == [("token", True), ("graph", True)]
    assert f"POST {graph.url}/users/alerts@example.test/sendMail" in steps[1].detail
    assert graph.requests == 0


@pytest.mark.parametrize(
    ("claims", "hint"),
    [
        ({**GRAPH_APP_CLAIMS, "aud": "https://outlook.office365.com"}, "is not Microsoft Graph"),
        ({**GRAPH_APP_CLAIMS, "roles": ["SMTP.SendAsApp"]}, "no Mail.Send role"),
    ],
)
def test_a_token_graph_cannot_use_is_called_out_before_sending(
    graph: FakeGraph,
    graph_credentials: CredentialsFactory,
    idp: FakeIdP,
    claims: dict[str, object],
    hint: str,
) -> None:
    idp.claims = claims
    steps = list(check_profile(graph_credentials(), "p", send_to="oncall@example.test"))
    assert [(s.name, s.ok) for s in steps] == [("token", False)]
    assert hint in (steps[0].hint or "")
    assert graph.requests == 0


def test_graphs_refusal_is_the_send_steps_failure_with_its_hint(
    graph: FakeGraph, graph_credentials: CredentialsFactory, idp: FakeIdP
) -> None:
    idp.claims = GRAPH_APP_CLAIMS
    graph.then(ACCESS_DENIED)
    steps = list(check_profile(graph_credentials(), "p", send_to="oncall@example.test"))
    assert [(s.name, s.ok) for s in steps] == [("token", True), ("send", False)]
    assert steps[1].detail.startswith("permanent at data: 403 ErrorAccessDenied: Access is denied")
    assert "application access policy" in (steps[1].hint or "")
