"""The bounce reader against a real IMAP server: Dovecot's imapd, SASL XOAUTH2 checked by
introspection at the test token endpoint, reports put in the mailbox by ``doveadm save``.

Jobs are sent through the pipeline (a real worker, the test SMTP server), then reports of
four real shapes come back for them, next to a reply from a person and a report for a job
mailpipe never sent.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from pytest_httpserver import HTTPServer

from tests.fakes.callback_receiver import Receiver
from tests.fakes.idp import FakeIdP
from tests.fakes.smtp_server import TlsFiles
from tests.interop.dovecot import Dovecot
from tests.pipeline import CALLBACK_SECRET, Pipeline
from tests.worker.bounces import samples
from worker.bounces.reader import read_bounces
from worker.credentials import Profile
from worker.intake import notify, publish_callbacks
from worker.queue import BOUNCES_TASK

MAILBOX = "alerts@example.test"  # the pipeline profile's sender, and its mailbox


@pytest.fixture
def dovecot(tls: TlsFiles, http_server: HTTPServer) -> Iterator[Dovecot]:
    server = Dovecot(
        tls=tls, introspection_url=http_server.url_for("/introspect"), passwords={}, imap=True
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture
def reading(pipeline: Pipeline, dovecot: Dovecot, idp: FakeIdP) -> Profile:
    """The pipeline's profile, now reading its bounce mailbox on the Dovecot."""
    idp.subjects["mailpipe"] = MAILBOX  # introspection says whose the token is
    path = pipeline.runtime.profiles_file.path
    path.write_text(
        path.read_text()
        + f'\n[profiles.alerts.bounces]\nimap_host = "127.0.0.1"\nimap_port = {dovecot.imap_port}'
        + '\nscope = "imap.read"\nmove_to = "Reports"\n'
    )
    current = pipeline.runtime.profiles_file.current
    pipeline.wait_for(lambda: current().get("alerts").bounces is not None)
    dovecot.create_folder(MAILBOX, "Reports")
    return current().get("alerts")


def sent(pipeline: Pipeline, *to: str, callback_url: str | None = None) -> str:
    job_id = notify("alerts", to=list(to), subject="[P1] db-01 down", text="Disk full",
                    callback_url=callback_url, runtime=pipeline.runtime)  # fmt: skip
    pipeline.wait_final(job_id)
    return job_id


def events(pipeline: Pipeline, job_id: str) -> list[tuple[str, str | None, str | None]]:
    return sorted(
        (e.event, e.recipient, e.enhanced_code)
        for e in pipeline.runtime.store.events_of(job_id)
        if e.event in ("bounced", "delayed")
    )


def test_reports_of_four_shapes_are_matched_to_their_jobs(
    pipeline: Pipeline, dovecot: Dovecot, reading: Profile, idp: FakeIdP
) -> None:
    pipeline.start_worker()
    receiver = Receiver(CALLBACK_SECRET)
    try:
        by_envid = sent(pipeline, "gone@example.net", callback_url=receiver.url)
        delayed = sent(pipeline, "slow@far.example", "oncall@example.test")
        by_exchange = sent(pipeline, "gone@example.net")
        by_gmail = sent(pipeline, "gone@example.net", "oncall@example.test")
        mid = f"<{by_exchange}@example.test>"
        for message in (
            samples.postfix(by_envid, f"<{by_envid}@example.test>", "gone@example.net"),
            samples.exim_delay(delayed, f"<{delayed}@example.test>", "slow@far.example"),
            samples.unrelated(),
            samples.exchange_online(mid, "gone@example.net"),
            samples.gmail(f"<{by_gmail}@example.test>", "gone@example.net"),
            samples.postfix("0" * 32, "<unknown@example.test>", "gone@example.net"),
        ):
            dovecot.save(MAILBOX, message)

        result = read_bounces(pipeline.runtime, reading)

        assert (result.messages, result.unmatched) == (6, 1)
        assert events(pipeline, by_envid) == [("bounced", "gone@example.net", "5.1.1")]
        assert events(pipeline, delayed) == [("delayed", "slow@far.example", "4.0.0")]
        assert events(pipeline, by_exchange) == [("bounced", "gone@example.net", "5.1.10")]
        assert events(pipeline, by_gmail) == [("bounced", "gone@example.net", "5.1.1")]
        # Every recipient bounced: bounced. One of two, or only delayed: still delivered.
        status = pipeline.status
        assert [status(j) for j in (by_envid, delayed, by_exchange, by_gmail)] == [
            "bounced", "delivered", "bounced", "delivered",
        ]  # fmt: skip
        assert sorted(result.bounced_jobs) == sorted([by_envid, by_exchange])
        # The reader logged in with a token of the profile's own client, for the mailbox scope.
        assert any(r.form.get("scope") == "imap.read" for r in idp.requests)
        # The bounce reaches the job's callback too, signed (the task publishes them so).
        publish_callbacks(pipeline.runtime, result.callbacks)
        pipeline.wait_for(lambda: "bounced" in [e["event"] for e in receiver.taken()])
        assert receiver.forged == []
        # What it handled moved to Reports; the reply and the unknown job's report stayed.
        assert dovecot.folder_count(MAILBOX, "Reports") == 4
        assert dovecot.folder_count(MAILBOX, "INBOX") == 2
        # A second run finds nothing new: the last UID is kept in the database.
        again = read_bounces(pipeline.runtime, reading)
        assert (again.messages, again.events) == (0, [])
    finally:
        receiver.close()
    counted = pipeline.runtime.metrics.counter("bounces")
    assert counted == {(("profile", "alerts"),): 3}


def test_two_readers_at_once_make_each_event_once(
    pipeline: Pipeline, dovecot: Dovecot, reading: Profile
) -> None:
    pipeline.start_worker()
    jobs = [sent(pipeline, "gone@example.net") for _ in range(5)]
    for job_id in jobs:
        dovecot.save(MAILBOX, samples.postfix(job_id, f"<{job_id}@example.test>",
                                               "gone@example.net"))  # fmt: skip
    start = threading.Barrier(2)
    made: list[int] = []

    def reader() -> None:
        start.wait()
        made.append(len(read_bounces(pipeline.runtime, reading).events))

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sum(made) == 5
    assert [len(events(pipeline, j)) for j in jobs] == [1] * 5


def test_beat_s_task_reads_the_mailbox_in_a_worker(
    pipeline: Pipeline, dovecot: Dovecot, reading: Profile
) -> None:
    pipeline.start_worker()
    job_id = sent(pipeline, "gone@example.net")
    dovecot.save(MAILBOX, samples.postfix(job_id, f"<{job_id}@example.test>", "gone@example.net"))
    pipeline.runtime.celery.send_task(BOUNCES_TASK)
    pipeline.runtime.celery.send_task(BOUNCES_TASK)
    pipeline.wait_for(lambda: pipeline.status(job_id) == "bounced")
    assert events(pipeline, job_id) == [("bounced", "gone@example.net", "5.1.1")]
