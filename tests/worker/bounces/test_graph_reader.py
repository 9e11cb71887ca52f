"""The bounce reader of a ``transport = "graph"`` profile, against the suite's fake Graph.

The fake serves the mailbox as Microsoft Graph documents it (delta pages joined by
``@odata.nextLink``, a final ``@odata.deltaLink``, MIME from ``$value``, ``move``); tokens
come from the suite's token endpoint, events go to the real store (SQLite and
PostgreSQL), metrics to a real Redis.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
import redis
from werkzeug import Request, Response

from tests.fakes.graph import ACCESS_DENIED, FakeGraph, throttled
from tests.worker.bounces import samples
from tests.worker.conftest import CredentialsFactory
from worker.bounces.imap import BounceMailboxError
from worker.bounces.reader import ReadResult, mailbox_key, read_bounces
from worker.credentials import Credentials, Profile, ProfilesFileError, load_profiles
from worker.metrics import Metrics
from worker.store import Job, Store

MAILBOX = samples.SENDER  # the profile's sender, and the mailbox its reports come back to
NO_SMTP_SERVER = SimpleNamespace(host=None, port=None, security=None)


@dataclass
class Context:
    store: Store
    credentials: Credentials
    metrics: Metrics


Reader = Callable[..., tuple[Context, Profile]]


@pytest.fixture
def reader(
    make_credentials: CredentialsFactory,
    graph: FakeGraph,
    store: Store,
    redis_client: redis.Redis,
) -> Reader:
    """``reader(**bounces)``: the context and the Graph profile "p" reading its mailbox."""

    def make(**bounces: str) -> tuple[Context, Profile]:
        table = {f"bounces.{k}": v for k, v in ({"folder": "inbox"} | bounces).items()}
        credentials = make_credentials(
            NO_SMTP_SERVER, provider="microsoft365", tenant="contoso.onmicrosoft.com",
            transport="graph", graph_url=graph.url, scope=None, **table,
        )  # fmt: skip
        return Context(store, credentials, Metrics(redis_client)), credentials.profiles.get("p")

    return make


def delivered(store: Store, recipient: str) -> tuple[str, str]:
    """A job delivered to ``recipient``: its id and Message-ID."""
    job = Job(
        profile="p", status="delivered", priority="normal", idempotency_key=None,
        notification={"to": [recipient], "subject": "[P1] db-01 down"}, sender=MAILBOX,
        recipients=[recipient], message=b"Subject: [P1] db-01 down\r\n\r\nDisk full\r\n",
        message_id="<pending@example.test>", smtputf8=False, attempt_count=1,
    )  # fmt: skip
    job_id, _ = store.add_job(job, idempotency_window=timedelta(hours=1))
    message_id = f"<{job_id}@example.test>"
    with store.session() as session:
        row = session.get(Job, job_id)
        assert row is not None
        row.message_id = message_id
    return job_id, message_id


def events(store: Store, job_id: str) -> list[tuple[str, str | None, str | None]]:
    return sorted((e.event, e.recipient, e.enhanced_code) for e in store.events_of(job_id))


def test_an_exchange_ndr_is_matched_to_its_job_and_other_mail_is_left_alone(
    reader: Reader, graph: FakeGraph, store: Store
) -> None:
    rt, profile = reader()
    job_id, message_id = delivered(store, "gone@example.net")
    graph.deliver(MAILBOX, samples.exchange_online(message_id, "gone@example.net"))
    graph.deliver(MAILBOX, samples.unrelated())
    graph.deliver(MAILBOX, samples.postfix("0" * 32, "<unknown@example.test>", "x@example.net"))

    result = read_bounces(rt, profile)

    assert (result.messages, result.unmatched) == (3, 1)
    assert events(store, job_id) == [("bounced", "gone@example.net", "5.1.10")]
    assert result.bounced_jobs == [job_id]
    assert getattr(store.get_job(job_id), "status", None) == "bounced"
    assert rt.metrics.counter("bounce_reports_unmatched") == {(("profile", "p"),): 1}
    assert rt.metrics.counter("bounces") == {(("profile", "p"),): 1}
    # Nothing moved without move_to: the reader only reads.
    assert len(graph.messages_in(MAILBOX, "inbox")) == 3


def test_the_delta_link_is_kept_so_a_second_run_reads_only_what_came_later(
    reader: Reader, graph: FakeGraph, store: Store
) -> None:
    rt, profile = reader()
    graph.page_size = 2  # the first round comes in pages joined by @odata.nextLink
    jobs = [delivered(store, "gone@example.net") for _ in range(5)]
    for job_id, message_id in jobs:
        graph.deliver(MAILBOX, samples.postfix(job_id, message_id, "gone@example.net"))

    first = read_bounces(rt, profile)
    assert (first.messages, len(first.events)) == (5, 5)
    link = store.delta_link(mailbox_key(profile))
    assert link is not None
    assert "$deltatoken=" in link

    again = read_bounces(rt, profile)
    assert (again.messages, again.events) == (0, [])

    late_id, late_mid = delivered(store, "late@example.net")
    graph.deliver(MAILBOX, samples.exchange_online(late_mid, "late@example.net"))
    later = read_bounces(rt, profile)
    assert later.messages == 1
    assert events(store, late_id) == [("bounced", "late@example.net", "5.1.10")]
    assert [len(events(store, j)) for j, _ in jobs] == [1] * 5


def test_two_readers_at_once_make_each_event_once(
    reader: Reader, graph: FakeGraph, store: Store
) -> None:
    rt, profile = reader()
    graph.page_size = 2
    jobs = [delivered(store, "gone@example.net") for _ in range(6)]
    for job_id, message_id in jobs:
        graph.deliver(MAILBOX, samples.postfix(job_id, message_id, "gone@example.net"))
    start = threading.Barrier(2)
    results: list[ReadResult] = []
    failures: list[BaseException] = []

    def read() -> None:
        start.wait()
        try:
            results.append(read_bounces(rt, profile))
        except BaseException as exc:  # reported below, in the test's thread
            failures.append(exc)

    threads = [threading.Thread(target=read) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert failures == []
    assert sum(len(r.events) for r in results) == 6
    assert [len(events(store, j)) for j, _ in jobs] == [1] * 6
    # Whoever stopped early, the cursor is at the round's end: nothing is left to read.
    assert read_bounces(rt, profile).messages == 0


def test_throttling_leaves_the_cursor_where_it_was_and_the_next_poll_goes_on(
    reader: Reader, graph: FakeGraph, store: Store
) -> None:
    rt, profile = reader()
    read_bounces(rt, profile)  # an empty mailbox: the first delta link
    key = mailbox_key(profile)
    before = store.delta_link(key)
    job_id, message_id = delivered(store, "gone@example.net")
    graph.deliver(MAILBOX, samples.exchange_online(message_id, "gone@example.net"))

    graph.then(throttled(7))  # the delta query itself
    with pytest.raises(BounceMailboxError, match="429 ApplicationThrottled, Retry-After 7 s") as e:
        read_bounces(rt, profile)
    assert (e.value.kind, e.value.retry_after_seconds) == ("transient", 7.0)
    assert store.delta_link(key) == before

    def handed_on(request: Request, request_id: str) -> Response:
        return graph.answer(request, request_id)

    graph.then(handed_on, throttled(3))  # the delta page answers; the message's $value not
    with pytest.raises(BounceMailboxError, match="fetching a message: Graph answered 429"):
        read_bounces(rt, profile)
    assert store.delta_link(key) == before
    assert events(store, job_id) == []

    result = read_bounces(rt, profile)
    assert result.messages == 1
    assert events(store, job_id) == [("bounced", "gone@example.net", "5.1.10")]
    assert store.delta_link(key) != before


def test_move_to_moves_the_reports_it_handled_and_nothing_else(
    reader: Reader, graph: FakeGraph, store: Store
) -> None:
    reports = graph.create_folder(MAILBOX, "Reports")
    rt, profile = reader(move_to=reports)
    job_id, message_id = delivered(store, "gone@example.net")
    handled = samples.exchange_online(message_id, "gone@example.net")
    graph.deliver(MAILBOX, handled)
    graph.deliver(MAILBOX, samples.unrelated())
    unknown = samples.postfix("0" * 32, "<unknown@example.test>", "x@example.net")
    graph.deliver(MAILBOX, unknown)

    result = read_bounces(rt, profile)

    assert (result.messages, result.unmatched, len(result.events)) == (3, 1, 1)
    assert graph.messages_in(MAILBOX, reports) == [handled]
    assert sorted(graph.messages_in(MAILBOX, "inbox")) == sorted([samples.unrelated(), unknown])
    # The move shows in the next delta as a removal: skipped, nothing is read again.
    again = read_bounces(rt, profile)
    assert (again.messages, again.events) == (0, [])
    assert events(store, job_id) == [("bounced", "gone@example.net", "5.1.10")]


def test_a_refused_read_is_one_permanent_line_naming_the_permission(
    reader: Reader, graph: FakeGraph, store: Store
) -> None:
    rt, profile = reader()
    graph.then(ACCESS_DENIED)
    with pytest.raises(BounceMailboxError) as refused:
        read_bounces(rt, profile)
    assert refused.value.kind == "permanent"
    assert "403 ErrorAccessDenied" in str(refused.value)
    assert "Mail.Read application permission" in str(refused.value)
    assert "\n" not in str(refused.value)
    assert store.delta_link(mailbox_key(profile)) is None


GRAPH_PROFILE = """
[profiles.pager]
provider = "microsoft365"
transport = "graph"
tenant = "contoso.onmicrosoft.com"
from_email = "pager@contoso.example"
auth = "oauth"
grant = "client_credentials"
client_id = "11111111-1111-1111-1111-111111111111"
client_secret_env = "SECRET"

[profiles.pager.bounces]
"""


def test_a_graph_profile_reads_its_reports_through_graph_without_an_imap_host(
    tmp_path: Path,
) -> None:
    path = tmp_path / "profiles.toml"
    path.write_text(GRAPH_PROFILE + 'move_to = "archive"\n')
    box = load_profiles(path, {"SECRET": "graph-secret"}).get("pager").bounces
    assert box is not None
    assert (box.host, box.port, box.folder, box.move_to, box.username) == (
        "graph.microsoft.com", 443, "inbox", "archive", "pager@contoso.example",
    )  # fmt: skip
    path.write_text(GRAPH_PROFILE + 'imap_host = "outlook.office365.com"\n')
    with pytest.raises(ProfilesFileError, match=r'bounces\.imap_host.*not for transport = "graph"'):
        load_profiles(path, {"SECRET": "graph-secret"})
