"""Real SMTP servers as the upstream of a real worker: every job arrives exactly once.

Dovecot's submission server, Postfix's smtpd and Exim, each with SASL by Dovecot (OAuth
tokens checked by introspection at the test token endpoint), each relaying to a sink that
counts the copies of every job's Message-ID. Four profiles log in four ways. A job counts as
delivered once the server accepted it; the test waits until the server has passed on all it
accepted, so every copy that will ever reach the sink has reached it.
"""

from __future__ import annotations

import collections
import time

from tests.interop.daemons import wait_until
from tests.interop.mailpipe import PROFILES, Mailpipe
from tests.interop.matrix import ROWS, Row
from tests.interop.sink import Sink
from tests.interop.upstreams import Upstream
from worker.intake import notify, notify_many

BACKLOG_PER_PROFILE = 50


def test_single_sends_through_each_way_to_log_in_arrive_once_each(
    mailpipe: Mailpipe, upstream: Upstream, sink: Sink
) -> None:
    accepted_before, started = upstream.accepted(), time.monotonic()
    mailpipe.start_worker()
    ids = []
    for name in PROFILES:
        job_id = notify(name, to=[f"oncall@{name}.example.test"], subject=f"[P1] via {name}",
                        text="The database is down.", runtime=mailpipe.runtime)  # fmt: skip
        mailpipe.wait_final([job_id], seconds=60)  # one at a time: each goes alone
        ids.append(job_id)
    check_exactly_once("single sends", ids, mailpipe, upstream, sink, accepted_before, started)


def test_a_backlog_of_200_jobs_over_four_profiles_arrives_once_each(
    mailpipe: Mailpipe, upstream: Upstream, sink: Sink
) -> None:
    accepted_before, started = upstream.accepted(), time.monotonic()
    ids = []
    for name in PROFILES:
        messages = [
            {"to": [f"subscriber{n}@{name}.example.test"], "subject": f"Status update {n}",
             "text": f"Hello subscriber {n}: the incident is resolved."}
            for n in range(BACKLOG_PER_PROFILE)
        ]  # fmt: skip
        ids += notify_many(name, messages, runtime=mailpipe.runtime)
    mailpipe.start_worker()  # the whole backlog waits: the batch path takes it in windows
    check_exactly_once("200-job backlog", ids, mailpipe, upstream, sink, accepted_before, started)


def check_exactly_once(
    case: str,
    ids: list[str],
    mailpipe: Mailpipe,
    upstream: Upstream,
    sink: Sink,
    accepted_before: int,
    started: float,
) -> None:
    """Every job delivered by one attempt, accepted once by the server, one copy at the sink."""
    mailpipe.wait_final(ids, seconds=180)
    wait_until(lambda: upstream.queued() == 0, 60, f"{upstream.name} passing on its queue\n"
               + upstream.logs())  # fmt: skip
    message_ids = {mailpipe.job(j).message_id: j for j in ids}
    wait_until(lambda: set(message_ids) <= set(sink.copies()), 30,
               f"every job at the sink\n{upstream.logs()}")  # fmt: skip
    copies = sink.copies()
    ROWS.append(Row(
        server=upstream.name, case=case, jobs=len(ids),
        delivered=sum(1 for m in message_ids if copies[m] >= 1),
        duplicates=sum(max(0, copies[m] - 1) for m in message_ids),
        seconds=time.monotonic() - started,
    ))  # fmt: skip

    # One line each, readable when 200 jobs go wrong: how many jobs had how many copies,
    # and how many had which sequence of attempts (with the first one's texts).
    jobs = [mailpipe.job(j) for j in ids]
    per_job = collections.Counter(copies[m] for m in message_ids)
    strangers = sorted(set(copies) - set(message_ids))
    assert (per_job, strangers) == ({1: len(ids)}, []), (
        f"copies per job at the sink (copies: jobs) {dict(per_job)}; other messages "
        f"{strangers[:3]}; job statuses {dict(collections.Counter(j.status for j in jobs))}; "
        f"{len(upstream.dovecot.panics())} Dovecot panic lines\n{upstream.logs()}"
    )
    outcomes = collections.Counter(tuple(a.outcome for a in j.attempts) for j in jobs)
    first_other = next((j for j in jobs if len(j.attempts) != 1), None)
    assert outcomes == {("delivered",): len(ids)}, (
        f"attempts per job (outcomes: jobs) {dict(outcomes)}; e.g. "
        f"{[(a.outcome, a.phase, a.text) for a in first_other.attempts] if first_other else ''}"
    )
    assert [(j.status, j.attempt_count, j.sends) for j in jobs] == [("delivered", 1, 1)] * len(ids)
    assert upstream.accepted() - accepted_before == len(ids), upstream.logs()
    assert upstream.dovecot.panics() == [], upstream.logs()
