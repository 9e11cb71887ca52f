"""Graph's answers to sendMail as outcomes, without a server (pure)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from worker.transport.graph.replies import AUTH_HINT, HINTS, graph_outcome

TO = ("a@example.test", "b@example.test")


def response(status: int, body: Any = None, **headers: str) -> httpx.Response:
    request = httpx.Request("POST", "https://graph.example.test/v1.0/users/x/sendMail")
    if body is None:
        return httpx.Response(status, headers=headers, request=request)
    if isinstance(body, bytes):
        return httpx.Response(status, content=body, headers=headers, request=request)
    return httpx.Response(status, json=body, headers=headers, request=request)


def error(code: str, message: str = "") -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "innerError": {"date": "x"}}}


def test_202_delivers_to_every_recipient() -> None:
    result = graph_outcome(response(202, **{"request-id": "r1"}), TO)
    assert (result.kind, result.phase, result.code, result.text) == (
        "delivered",
        "data",
        202,
        "Accepted",
    )
    assert [(r.address, r.accepted, r.code, r.text) for r in result.recipients] == [
        ("a@example.test", True, 202, "Accepted"),
        ("b@example.test", True, 202, "Accepted"),
    ]
    assert result.queue_id == "request-id=r1"


@pytest.mark.parametrize(
    ("status", "kind", "phase"),
    [
        (200, "permanent", "data"),  # not 202: Graph did not take the message
        (400, "permanent", "data"),
        (401, "auth_rejected", "auth"),
        (403, "permanent", "data"),
        (404, "permanent", "data"),
        (408, "transient", "data"),
        (429, "transient", "data"),
        (500, "transient", "data"),
        (501, "permanent", "data"),
        (502, "transient", "data"),
        (503, "transient", "data"),
        (504, "transient", "data"),
    ],
)
def test_statuses_are_classified(status: int, kind: str, phase: str) -> None:
    result = graph_outcome(response(status, error("SomeCode", "what")), TO)
    assert (result.kind, result.phase, result.code) == (kind, phase, status)
    assert result.recipients == ()


def test_a_refused_token_gets_the_auth_hint_whatever_the_code() -> None:
    result = graph_outcome(response(401, error("ErrorAccessDenied", "Access is denied.")), TO)
    assert result.hint == AUTH_HINT
    assert result.text == "ErrorAccessDenied: Access is denied."


def test_a_known_error_code_gets_its_hint_and_an_unknown_none() -> None:
    denied = graph_outcome(response(403, error("ErrorAccessDenied", "Access is denied.")), TO)
    assert denied.hint == HINTS["ErrorAccessDenied"]
    assert graph_outcome(response(400, error("ErrorSomethingNew", "x")), TO).hint is None


def test_the_message_is_one_short_line_and_a_missing_one_leaves_the_code() -> None:
    long = graph_outcome(response(400, error("ErrorInvalidRecipients", "bad\n  address " * 50)), TO)
    assert long.text == "ErrorInvalidRecipients: " + " ".join(["bad address"] * 50)[:300]
    assert graph_outcome(response(400, error("ErrorInvalidRecipients")), TO).text == (
        "ErrorInvalidRecipients"
    )


@pytest.mark.parametrize(
    "body",
    [b"<html>Bad Gateway</html>", [1, 2], {"error": None}, {"error": {}}, {"other": 1}, b""],
)
def test_a_body_that_is_not_a_graph_error_gives_the_status_line(body: Any) -> None:
    result = graph_outcome(response(502, body), TO)
    assert result.text == "HTTP 502 Bad Gateway"
    assert result.kind == "transient"


def test_an_unknown_status_without_a_reason_phrase_is_shown_without_one() -> None:
    assert graph_outcome(response(599, b"x"), TO).text == "HTTP 599"


def test_retry_after_is_handed_on() -> None:
    throttled = graph_outcome(response(429, error("TooManyRequests"), **{"Retry-After": "17"}), TO)
    assert throttled.retry_after_seconds == 17.0
    assert graph_outcome(response(429, error("TooManyRequests")), TO).retry_after_seconds is None


def test_request_ids_are_what_support_asks_for_and_short() -> None:
    both = response(500, error("x"), **{"request-id": "r1", "client-request-id": "c1"})
    assert graph_outcome(both, TO).queue_id == "request-id=r1 client-request-id=c1"
    only_client = response(500, error("x"), **{"client-request-id": "c1"})
    assert graph_outcome(only_client, TO).queue_id == "client-request-id=c1"
    assert graph_outcome(response(500, error("x"), **{"request-id": ""}), TO).queue_id is None
    long = response(500, error("x"), **{"request-id": "r" * 300})
    assert graph_outcome(long, TO).queue_id == ("request-id=" + "r" * 300)[:200]
