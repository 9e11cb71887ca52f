"""Real SMTP servers as the upstream of a real worker: every job arrives exactly once.

Dovecot's submission server, Postfix's smtpd and Exim, each with SASL by Dovecot (OAuth
tokens checked by introspection at the test token endpoint), each relaying to a sink that
counts the copies of every job's Message-ID. Four profiles log in four ways.
"""

from __future__ import annotations

import base64
import smtplib
import ssl

import pytest

from tests.fakes.idp import FakeIdP
from tests.fakes.smtp_server import TlsFiles
from tests.interop.checks import Run
from tests.interop.daemons import wait_until
from tests.interop.mailpipe import PROFILES, WORKER_PROCESSES, Mailpipe
from tests.interop.sink import Sink
from tests.interop.upstreams import Upstream
from worker import redis_keys
from worker.intake import notify, notify_many

BACKLOG_PER_PROFILE = 50


def test_single_sends_through_each_way_to_log_in_arrive_once_each(
    run: Run, mailpipe: Mailpipe, idp: FakeIdP
) -> None:
    mailpipe.start_worker()
    ids = []
    for profile in PROFILES:
        job_id = notify(profile.name, to=[f"oncall@{profile.name}.example.test"],
                        subject=f"[P1] via {profile.name}", text="The database is down.",
                        runtime=mailpipe.runtime)  # fmt: skip
        mailpipe.wait_final([job_id], seconds=60)  # one at a time: each goes alone
        ids.append(job_id)
    run.settle("single sends", ids).assert_exactly_once()
    # The server checked every OAuth profile's token at the token endpoint.
    checked = {idp.token_clients.get(token) for token in idp.introspections}
    assert checked == {p.client_id for p in PROFILES if p.client_id is not None}


def test_a_backlog_of_200_jobs_over_four_profiles_arrives_once_each(
    run: Run, mailpipe: Mailpipe, upstream: Upstream
) -> None:
    ids = queue_backlog(mailpipe)
    mailpipe.start_worker()  # the whole backlog waits: the batch path takes it in windows
    run.settle("200-job backlog", ids).assert_exactly_once()
    assert not grouping_turned_off(mailpipe, upstream), "grouping is off unless opted in"


@pytest.mark.parametrize("profile_lines", ["pipeline_messages = true"], ids=["grouping"])
def test_a_backlog_with_grouping_opted_in_keeps_it_only_where_the_server_survives_it(
    run: Run, mailpipe: Mailpipe, upstream: Upstream
) -> None:
    ids = queue_backlog(mailpipe)
    mailpipe.start_worker()
    result = run.settle("backlog, grouped", ids)
    if upstream.name != "dovecot":
        result.assert_exactly_once()
        assert not grouping_turned_off(mailpipe, upstream)
        return
    # Dovecot 2.3 relays a grouped message and then dies on the commands behind it. The
    # first such drop turns grouping off for the server in every worker; only a message
    # whose connection was grouping when that happened can arrive twice: one per worker
    # process at most (docs/profiles/index.md, "When a connection drops after the data").
    assert grouping_turned_off(mailpipe, upstream), (
        "grouping stayed on: a Dovecot that survives it (not 2.3.19) needs this test changed"
    )
    assert result.strangers == []
    assert [j.status for j in result.jobs] == ["delivered"] * len(ids)
    assert set(result.per_job) <= {1, 2}
    assert result.duplicates <= WORKER_PROCESSES, result.summary()
    assert len(upstream.dovecot.panics()) >= 1, "the drop this test is about did happen"


def test_a_token_the_endpoint_never_issued_is_refused_and_nothing_is_relayed(
    upstream: Upstream, sink: Sink, idp: FakeIdP, tls: TlsFiles
) -> None:
    sink.clear()
    forged = f"user=xoauth2@example.test\x01auth=Bearer {'f' * 40}\x01\x01"
    # From 127.0.0.2: Dovecot delays later logins from an address that failed one, and
    # the other tests log in from 127.0.0.1.
    with smtplib.SMTP("127.0.0.1", upstream.port, timeout=30,
                      source_address=("127.0.0.2", 0)) as smtp:  # fmt: skip
        smtp.starttls(context=ssl.create_default_context(cafile=str(tls.ca_pem)))
        smtp.ehlo()
        code, _ = smtp.docmd("AUTH", "XOAUTH2 " + base64.b64encode(forged.encode()).decode())
        if code == 334:  # the error as a challenge (RFC 7628 §3.2.2): an empty answer ends it
            code, _ = smtp.docmd("")
        assert code == 535
        with pytest.raises(smtplib.SMTPException):
            smtp.sendmail("xoauth2@example.test", ["oncall@example.test"], b"Subject: x\r\n\r\nx")
    assert idp.introspections == ["f" * 40], "the server asked the token endpoint"
    assert sink.count() == 0


def queue_backlog(mailpipe: Mailpipe) -> list[str]:
    """BACKLOG_PER_PROFILE personalised notifications per profile, queued before any worker."""
    ids = []
    for profile in PROFILES:
        messages = [
            {"to": [f"subscriber{n}@{profile.name}.example.test"],
             "subject": f"Status update {n}",
             "text": f"Hello subscriber {n}: the incident is resolved."}
            for n in range(BACKLOG_PER_PROFILE)
        ]  # fmt: skip
        ids += notify_many(profile.name, messages, runtime=mailpipe.runtime)
    return ids


def grouping_turned_off(mailpipe: Mailpipe, upstream: Upstream) -> bool:
    key = redis_keys.smtp_grouping_off("127.0.0.1", upstream.port)
    return bool(mailpipe.runtime.redis.exists(key))


def test_dsn_requests_reach_the_next_hop_where_the_server_offers_dsn(
    mailpipe: Mailpipe, upstream: Upstream, sink: Sink, tls: TlsFiles
) -> None:
    offers_dsn = "dsn" in ehlo_keywords(upstream, tls)
    if upstream.name == "postfix":
        assert offers_dsn, "Postfix offers DSN: the case this test is about"
    mailpipe.start_worker()
    profile = PROFILES[0].name
    job_id = notify(profile, to=["oncall@example.test"], subject="[P1] disk", text="Disk full.",
                    runtime=mailpipe.runtime)  # fmt: skip
    mailpipe.wait_final([job_id], seconds=60)
    assert mailpipe.runtime.store.get_job(job_id).status == "delivered"  # type: ignore[union-attr]
    wait_until(lambda: sink.count() == 1, seconds=30, what="the message at the sink")
    ((mail_options, rcpt_options),) = sink.envelopes
    if offers_dsn:
        # The server took ENVID and NOTIFY from mailpipe and passed them on unchanged.
        assert f"ENVID={job_id.upper()}" in mail_options
        assert "RET=HDRS" in mail_options
        assert "NOTIFY=FAILURE,DELAY" in rcpt_options["oncall@example.test"]
    else:
        assert not [o for o in mail_options if o.startswith("ENVID=")]


def ehlo_keywords(upstream: Upstream, tls: TlsFiles) -> set[str]:
    """What the server offers after STARTTLS, as mailpipe sees it."""
    with smtplib.SMTP("127.0.0.1", upstream.port, timeout=30) as smtp:
        smtp.starttls(context=ssl.create_default_context(cafile=str(tls.ca_pem)))
        smtp.ehlo()
        return set(smtp.esmtp_features)
