"""The callbacks' transport against a real receiver: the checked address is the one connected to."""

from __future__ import annotations

import ipaddress
import ssl
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from tests.fakes.callback_receiver import Receiver
from tests.fakes.smtp_tls import make_tls
from worker.callback_targets import CallbackPolicy, IPAddress
from worker.delivery.callback_transport import CallbackRefusedError, CallbackTransport
from worker.delivery.callbacks import body, signature
from worker.store import Event

SECRET = "transport-test-secret"
LOOPBACK = ipaddress.ip_address("127.0.0.1")
METADATA = ipaddress.ip_address("169.254.169.254")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver(SECRET)
    yield made
    made.close()


def client(allowed: list[str], **options: object) -> httpx.Client:
    transport = CallbackTransport(CallbackPolicy.parse(allowed), **options)  # type: ignore[arg-type]
    return httpx.Client(transport=transport, follow_redirects=False, trust_env=False)


def signed_post(http: httpx.Client, url: str) -> httpx.Response:
    """A POST the receiver takes (it checks the signature before it keeps anything)."""
    event = Event(id="e1", job_id="j1", event="delivered", profile="alerts",
                  recipient="oncall@example.test", at=datetime.now(UTC), smtp_code=250,
                  enhanced_code="2.0.0", text="ok")  # fmt: skip
    content = body(event)
    header = signature(SECRET.encode(), int(time.time()), content)
    return http.post(url, content=content, headers={"X-Mailpipe-Signature": header})


def test_an_allowed_network_reaches_the_receiver(receiver: Receiver) -> None:
    with client(["http://127.0.0.0/8"]) as http:
        assert signed_post(http, receiver.url).status_code == 200
    assert [e["job_id"] for e in receiver.taken()] == ["j1"]


def test_the_default_refuses_the_loopback_receiver_before_connecting(receiver: Receiver) -> None:
    with client([]) as http, pytest.raises(CallbackRefusedError) as caught:
        signed_post(http, receiver.url)
    assert "127.0.0.1 is a loopback address" in str(caught.value)
    assert receiver.posts == []


def test_a_name_resolving_to_loopback_is_refused_at_connect_time(receiver: Receiver) -> None:
    # "localhost" passes as a listed name, but no listed network holds what it resolves to
    # (the system's resolver: /etc/hosts).
    url = f"http://localhost:{receiver.port}/hooks/mailpipe"
    with client(["http://localhost"]) as http, pytest.raises(CallbackRefusedError) as caught:
        signed_post(http, url)
    assert str(caught.value).startswith("localhost resolves to ")
    assert "a loopback address" in str(caught.value)
    assert receiver.posts == []


def test_every_address_a_name_resolves_to_must_be_allowed(receiver: Receiver) -> None:
    def resolve(host: str, port: int) -> list[IPAddress]:
        return [LOOPBACK, METADATA]

    url = f"http://hooks.example.test:{receiver.port}/hooks/mailpipe"
    with (
        client(["http://127.0.0.0/8"], resolve=resolve) as http,
        pytest.raises(CallbackRefusedError) as caught,
    ):
        signed_post(http, url)
    assert "169.254.169.254, a link-local address" in str(caught.value)
    assert receiver.posts == []


def test_the_connection_goes_to_the_address_checked_and_keeps_the_name(receiver: Receiver) -> None:
    # A name no DNS knows: only the address the transport checked can have been used, and a
    # second answer (rebinding to the metadata service) is never asked for.
    answers = [[LOOPBACK], [METADATA]]
    asked: list[str] = []

    def resolve(host: str, port: int) -> list[IPAddress]:
        asked.append(host)
        return answers.pop(0)

    url = f"http://hooks.example.test:{receiver.port}/hooks/mailpipe"
    with client(["http://127.0.0.0/8"], resolve=resolve) as http:
        assert signed_post(http, url).status_code == 200
    assert asked == ["hooks.example.test"]
    (post,) = receiver.posts
    assert post.host == f"hooks.example.test:{receiver.port}"


def test_a_name_that_does_not_resolve_is_a_connect_error_tried_again_later() -> None:
    def resolve(host: str, port: int) -> list[IPAddress]:
        raise OSError("Name or service not known")

    with client([], resolve=resolve) as http, pytest.raises(httpx.ConnectError):
        signed_post(http, "https://hooks.example.test/x")


def test_https_checks_the_certificate_for_the_name_while_connecting_to_the_checked_address(
    tmp_path: Path,
) -> None:
    tls = make_tls(tmp_path, identities=("hooks.example.test",))
    receiver = Receiver(SECRET, tls=tls.server_context)
    trust = ssl.create_default_context(cafile=str(tls.ca_pem))
    try:

        def resolve(host: str, port: int) -> list[IPAddress]:
            return [LOOPBACK]

        url = f"https://hooks.example.test:{receiver.port}/hooks/mailpipe"
        with client(["127.0.0.0/8"], resolve=resolve, verify=trust) as http:
            assert signed_post(http, url).status_code == 200
            # The same server by its address: its certificate does not name it.
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                signed_post(http, receiver.url)
        (post,) = receiver.posts
        assert post.host == f"hooks.example.test:{receiver.port}"
    finally:
        receiver.close()
