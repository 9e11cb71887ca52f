"""The Graph transport against a local HTTPS Graph: 202s, throttling, 401s, refusals, caps."""

from __future__ import annotations

import base64
import threading
import time

import pytest
import redis

from tests.fakes.graph import (
    ACCESS_DENIED,
    INVALID_TOKEN,
    NOT_ENABLED,
    FakeGraph,
    graph_error,
    throttled,
)
from tests.fakes.idp import FakeIdP
from tests.worker.conftest import CredentialsFactory
from tests.worker.transport.smtp.sending import message
from worker.transport import SendResult
from worker.transport.graph import GraphTransport
from worker.transport.slots import ConnectionSlots


def transport_for(
    credentials: object, transports: list[GraphTransport], **options: object
) -> GraphTransport:
    transport = GraphTransport(credentials, **options)  # type: ignore[arg-type]
    transports.append(transport)
    return transport


def send(transport: GraphTransport, n: int = 1, **fields: object) -> SendResult:
    return transport.send(transport.credentials.profiles.get("p"), message(n, **fields))


def test_the_mime_message_goes_base64_encoded_exactly_as_built(
    graph: FakeGraph,
    graph_credentials: CredentialsFactory,
    transports: list[GraphTransport],
    idp: FakeIdP,
) -> None:
    transport = transport_for(graph_credentials(), transports)
    sent = message(1)
    result = transport.send(transport.credentials.profiles.get("p"), sent)
    assert result.outcome.kind == "delivered", result.outcome.summary()
    (seen,) = graph.sent
    assert seen.mailbox == "alerts@example.test"
    assert seen.mime == sent.data  # headers, Message-ID and body untouched
    assert seen.headers["Content-Type"] == "text/plain"
    assert seen.query == {}  # saveToSentItems left at Graph's default (true)
    assert idp.requests[0].form["scope"] == "https://graph.microsoft.com/.default"
    outcome = result.outcome
    assert (outcome.code, outcome.phase) == (202, "data")
    assert [(r.address, r.accepted) for r in outcome.recipients] == [("oncall@example.test", True)]
    # The ids Microsoft support asks for: Graph's request-id and ours, echoed.
    assert outcome.queue_id is not None
    assert "request-id=" in outcome.queue_id
    assert f"client-request-id={seen.headers['Client-Request-Id']}" in outcome.queue_id
    assert result.token_source == "fresh"


def test_envelope_recipients_no_header_names_go_in_a_bcc_header(
    graph: FakeGraph, graph_credentials: CredentialsFactory, transports: list[GraphTransport]
) -> None:
    transport = transport_for(graph_credentials(), transports)
    sent = message(1, cc=("lead@example.test",), bcc=("audit@example.test",))
    assert b"audit@example.test" not in sent.data  # Bcc is envelope-only in what we built
    assert transport.send(transport.credentials.profiles.get("p"), sent).outcome.kind == "delivered"
    (seen,) = graph.sent
    assert seen.message["Bcc"] == "audit@example.test"
    assert seen.message["Cc"] == "lead@example.test"
    assert seen.mime.endswith(sent.data)


def test_save_to_sent_items_false_goes_in_the_query(
    graph: FakeGraph, graph_credentials: CredentialsFactory, transports: list[GraphTransport]
) -> None:
    transport = transport_for(graph_credentials(save_to_sent_items=False), transports)
    assert send(transport).outcome.kind == "delivered"
    assert graph.sent[0].query == {"saveToSentItems": "false"}


def test_throttling_is_transient_and_carries_graphs_retry_after(
    graph: FakeGraph, graph_credentials: CredentialsFactory, transports: list[GraphTransport]
) -> None:
    transport = transport_for(graph_credentials(), transports)
    graph.then(throttled(retry_after=7))
    outcome = send(transport).outcome
    assert (outcome.kind, outcome.code, outcome.retry_after_seconds) == ("transient", 429, 7.0)
    assert outcome.text.startswith("ApplicationThrottled: Application is over")
    assert graph.sent == []
    assert send(transport, 2).outcome.kind == "delivered"


@pytest.mark.parametrize("status", [503, 504])
def test_graph_unavailable_is_transient(
    graph: FakeGraph,
    graph_credentials: CredentialsFactory,
    transports: list[GraphTransport],
    status: int,
) -> None:
    transport = transport_for(graph_credentials(), transports)
    graph.then(
        graph_error(status, "ServiceUnavailable", "Service Unavailable", {"Retry-After": "3"})
    )
    outcome = send(transport).outcome
    assert (outcome.kind, outcome.code, outcome.retry_after_seconds) == ("transient", status, 3.0)


def test_a_401_drops_the_token_everywhere_and_tries_one_fresh_token(
    graph: FakeGraph,
    graph_credentials: CredentialsFactory,
    transports: list[GraphTransport],
    idp: FakeIdP,
) -> None:
    credentials = graph_credentials()
    transport = transport_for(credentials, transports)
    assert send(transport, 1).outcome.kind == "delivered"
    graph.revoked.add(idp.issued_access_tokens[0])
    result = send(transport, 2)
    assert result.outcome.kind == "delivered", result.outcome.summary()
    assert len(idp.issued_access_tokens) == 2
    assert result.token_source == "fresh"
    # The fresh token is the cached one now, for every process.
    assert (
        credentials.cache.get(credentials.grant(credentials.profiles.get("p"))).token.access_token
        == (idp.issued_access_tokens[1])
    )


def test_a_token_graph_keeps_refusing_is_auth_rejected_with_a_hint(
    graph: FakeGraph, graph_credentials: CredentialsFactory, transports: list[GraphTransport]
) -> None:
    transport = transport_for(graph_credentials(), transports)
    graph.then(INVALID_TOKEN, INVALID_TOKEN)
    outcome = send(transport).outcome
    assert (outcome.kind, outcome.phase, outcome.code) == ("auth_rejected", "auth", 401)
    assert outcome.text == (
        "InvalidAuthenticationToken: Access token validation failure. Invalid audience."
    )
    assert outcome.hint is not None
    assert "https://graph.microsoft.com" in outcome.hint
    assert "Mail.Send" in outcome.hint
    assert graph.requests == 2  # one fresh token, not a loop


@pytest.mark.parametrize(
    ("answer", "code", "hint_says"),
    [
        (ACCESS_DENIED, 403, "application access policy"),
        (NOT_ENABLED, 404, "Exchange Online"),
        (
            graph_error(
                400,
                "ErrorInvalidRecipients",
                "At least one recipient is not valid., Recipient 'x@' is not resolved.",
            ),
            400,
            "recipients",
        ),
    ],
)
def test_graphs_refusals_are_permanent_with_what_to_do(
    graph: FakeGraph,
    graph_credentials: CredentialsFactory,
    transports: list[GraphTransport],
    answer: object,
    code: int,
    hint_says: str,
) -> None:
    transport = transport_for(graph_credentials(), transports)
    graph.then(answer)  # type: ignore[arg-type]
    outcome = send(transport).outcome
    assert (outcome.kind, outcome.code) == ("permanent", code)
    assert outcome.hint is not None
    assert hint_says in outcome.hint
    assert "\n" not in outcome.summary()


def test_an_untrusted_certificate_is_permanent_and_names_ca_file(
    graph: FakeGraph, graph_credentials: CredentialsFactory, transports: list[GraphTransport]
) -> None:
    # The profile trusts only the system CAs, not the test CA that signed Graph's certificate.
    credentials = graph_credentials(ca_file=None)
    outcome = send(transport_for(credentials, transports)).outcome
    assert (outcome.kind, outcome.phase) == ("permanent", "tls")
    assert "not trusted" in outcome.text
    assert outcome.hint is not None
    assert "ca_file" in outcome.hint
    assert graph.requests == 0


def test_graph_unreachable_is_transient_at_connect(
    graph_credentials: CredentialsFactory, transports: list[GraphTransport]
) -> None:
    from tests.support import free_port

    credentials = graph_credentials(graph_url=f"https://127.0.0.1:{free_port()}/v1.0")
    outcome = send(transport_for(credentials, transports)).outcome
    assert (outcome.kind, outcome.phase) == ("transient", "connect")
    assert outcome.text == "Graph unreachable: ConnectError"


def test_requests_in_flight_per_mailbox_are_capped_across_transports(
    graph: FakeGraph,
    graph_credentials: CredentialsFactory,
    transports: list[GraphTransport],
    redis_url: str,
) -> None:
    """Two "workers" with 3 threads each never have more than max_connections (2) in flight."""
    client = redis.Redis.from_url(redis_url)
    credentials = graph_credentials(max_connections=2)
    workers = [
        transport_for(credentials, transports, slots=ConnectionSlots(client), slot_wait_seconds=30)
        for _ in range(2)
    ]
    graph.hold.clear()  # every request waits until released: the cap is what limits them
    results: list[SendResult] = []
    threads = [
        threading.Thread(target=lambda w=w, n=n: results.append(send(w, n)))
        for n in range(3)
        for w in workers
    ]
    for thread in threads:
        thread.start()
    # Release them once the cap is reached: the other four are waiting for a slot.
    deadline = time.monotonic() + 30
    while graph.in_flight < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    graph.hold.set()
    for thread in threads:
        thread.join(60)
    client.close()
    assert [r.outcome.kind for r in results] == ["delivered"] * 6
    assert len(graph.sent) == 6
    assert graph.most_in_flight == 2


def test_a_full_mailbox_is_busy_not_an_attempt(
    graph: FakeGraph,
    graph_credentials: CredentialsFactory,
    transports: list[GraphTransport],
    redis_url: str,
) -> None:
    client = redis.Redis.from_url(redis_url)
    slots = ConnectionSlots(client)
    credentials = graph_credentials(max_connections=1)
    held = slots.try_acquire("p", 1)  # another worker's request in flight
    assert held is not None
    transport = transport_for(credentials, transports, slots=slots, slot_wait_seconds=0.2)
    result = send(transport)
    client.close()
    assert result.busy
    assert graph.requests == 0


def test_the_request_carries_the_message_base64_encoded(
    graph: FakeGraph, graph_credentials: CredentialsFactory, transports: list[GraphTransport]
) -> None:
    """What crosses the wire is base64 text, which Graph decodes (its documented MIME form)."""
    captured: list[bytes] = []
    original = graph._send_mail

    def spy(request, request_id):  # type: ignore[no-untyped-def]
        captured.append(request.get_data())
        return original(request, request_id)

    graph._send_mail = spy  # type: ignore[method-assign]
    sent = message(1)
    credentials = graph_credentials()
    transport = transport_for(credentials, transports)
    assert transport.send(credentials.profiles.get("p"), sent).outcome.kind == "delivered"
    assert captured == [base64.b64encode(sent.data)]
