"""The whole pipeline: notify → Redis → a real Celery worker → XOAUTH2 → SMTP → records."""

from __future__ import annotations

import base64
import json
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
import sqlalchemy
from alembic.script import ScriptDirectory
from kombu import Connection

from tests.leaks import SecretRegistry
from tests.pipeline import CLIENT_SECRET, REPO, Pipeline
from worker.delivery import RateLimiter, deliver
from worker.intake import notify, publish
from worker.queue import REQUEUE_TASK
from worker.store import Job, alembic_config


def send(pipeline: Pipeline, n: int = 1, **fields: object) -> str:
    values: dict[str, object] = {
        "to": ["oncall@example.test"],
        "subject": f"[P1] db-0{n} down",
        "text": f"Disk full on db-0{n}",
        "headers": {"X-Incident-Id": f"INC-{n}"},
    }
    values.update(fields)
    return notify("alerts", runtime=pipeline.runtime, **values)  # type: ignore[arg-type]


def subjects(pipeline: Pipeline) -> list[str]:
    return sorted(m.message["Subject"] for m in pipeline.server.messages)


def test_a_notification_is_delivered_end_to_end(pipeline: Pipeline) -> None:
    pipeline.start_worker(fresh=True)  # as users start it: `python -m celery`, nothing preloaded
    job_id = send(pipeline, html="<p>Disk full on <b>db-01</b></p>", bcc=["audit@example.test"])
    pipeline.wait_final(job_id)
    job = pipeline.runtime.store.get_job(job_id)
    assert job is not None
    assert (job.status, job.attempt_count) == ("delivered", 1)
    (attempt,) = job.attempts
    assert (attempt.outcome, attempt.phase, attempt.smtp_code) == ("delivered", "data", 250)
    assert attempt.token_source == "fresh"
    assert attempt.recipients[0].accepted
    (received,) = pipeline.server.messages
    assert received.message["Subject"] == "[P1] db-01 down"
    assert received.message["X-Incident-Id"] == "INC-1"
    assert received.message["Message-ID"] == f"<{job_id}@example.test>"
    assert received.rcpt_tos == ["oncall@example.test", "audit@example.test"]
    assert b"audit@example.test" not in received.data
    assert pipeline.server.sessions[0].auth_mechanism == "XOAUTH2"


@pytest.mark.parametrize("pool", ["threads", "prefork"])
def test_a_stopping_worker_says_quit_on_its_pooled_connections(
    pipeline: Pipeline, pool: str
) -> None:
    worker = pipeline.start_worker(pool=pool, concurrency=2)
    pipeline.wait_final(send(pipeline))
    (session,) = pipeline.server.sessions
    assert not session.closed  # pooled, waiting for the next message
    worker.send_signal(signal.SIGTERM)  # a warm shutdown, as systemd and Kubernetes stop it
    worker.wait(30)
    pipeline.server.wait_closed()
    assert session.quit, "the connection was dropped without QUIT"


def test_transient_failure_then_success_records_two_attempts(pipeline: Pipeline) -> None:
    pipeline.server.fail_next("rcpt", "451 4.3.0 Try again later")
    pipeline.start_worker()
    job_id = send(pipeline)
    pipeline.wait_final(job_id)
    job = pipeline.runtime.store.get_job(job_id)
    assert job is not None
    assert job.status == "delivered"
    assert [(a.outcome, a.phase, a.smtp_code) for a in job.attempts] == [
        ("transient", "rcpt", 451),
        ("delivered", "data", 250),
    ]
    assert len(pipeline.server.messages) == 1


def test_a_permanent_failure_is_recorded_once_and_never_retried(pipeline: Pipeline) -> None:
    pipeline.server.fail_next("data", "552 5.3.4 Message size exceeds fixed maximum message size")
    pipeline.start_worker()
    job_id = send(pipeline)
    pipeline.wait_final(job_id)
    time.sleep(1.5)  # longer than any retry delay of this configuration
    job = pipeline.runtime.store.get_job(job_id)
    assert job is not None
    assert (job.status, job.attempt_count, job.outcome) == ("failed", 1, "permanent")
    assert job.attempts[0].enhanced_code == "5.3.4"
    assert "too large" in (job.attempts[0].hint or "")
    assert pipeline.server.messages == []


def test_a_rejected_token_is_replaced_by_a_fresh_one(pipeline: Pipeline) -> None:
    revoked: set[str] = set()
    idp = pipeline.idp
    pipeline.server.token_ok = lambda user, t: t in idp.issued_access_tokens and t not in revoked
    pipeline.runtime.credentials.get(
        pipeline.runtime.profiles.get("alerts")
    )  # a token in the shared cache...
    revoked.update(idp.issued_access_tokens)  # ...that the server no longer accepts
    pipeline.start_worker()
    job_id = send(pipeline)
    pipeline.wait_final(job_id)
    job = pipeline.runtime.store.get_job(job_id)
    assert job is not None
    assert job.status == "delivered"
    assert job.attempts[-1].token_source == "fresh"
    assert len(idp.requests) == 2
    assert len(pipeline.server.auth_failures) == 1


def test_partial_recipient_failure_is_recorded_per_recipient(pipeline: Pipeline) -> None:
    pipeline.server.fail_recipient("gone@example.test", "550 5.1.1 User unknown")
    pipeline.start_worker()
    job_id = send(pipeline, to=["oncall@example.test", "gone@example.test"])
    pipeline.wait_final(job_id)
    job = pipeline.runtime.store.get_job(job_id)
    assert job is not None
    assert job.status == "delivered"
    results = {r.address: (r.accepted, r.smtp_code) for r in job.attempts[0].recipients}
    assert results == {"oncall@example.test": (True, 250), "gone@example.test": (False, 550)}
    assert pipeline.server.messages[0].rcpt_tos == ["oncall@example.test"]


def test_the_same_idempotency_key_twice_sends_one_email(pipeline: Pipeline) -> None:
    pipeline.start_worker()
    first = send(pipeline, idempotency_key="alertmanager:db-01:firing")
    second = send(pipeline, idempotency_key="alertmanager:db-01:firing")
    assert first == second
    pipeline.wait_final(first)
    time.sleep(0.5)
    assert len(pipeline.server.messages) == 1


def test_the_same_task_message_twice_sends_one_email(pipeline: Pipeline) -> None:
    job_id = send(pipeline)
    publish(pipeline.runtime, job_id, "normal")  # a duplicate on the broker
    publish(pipeline.runtime, job_id, "high")
    pipeline.start_worker()
    pipeline.wait_final(job_id)
    time.sleep(0.5)
    job = pipeline.runtime.store.get_job(job_id)
    assert job is not None
    assert job.attempt_count == 1
    assert len(pipeline.server.messages) == 1


def test_a_worker_killed_mid_send_loses_nothing_and_sends_nothing_twice(
    pipeline: Pipeline,
) -> None:
    pipeline.server.rcpt_delay_seconds = 3.0
    doomed = pipeline.start_worker(concurrency=4)
    jobs = [send(pipeline, n) for n in range(8)]
    pipeline.wait_for(lambda: pipeline.server.rcpt_commands >= 4)
    time.sleep(0.3)  # every in-flight transaction is now waiting at RCPT
    doomed.send_signal(signal.SIGKILL)
    doomed.wait(10)
    pipeline.server.rcpt_delay_seconds = 0.0
    pipeline.start_worker()
    # Jobs the dead worker had claimed come back when their lease (4 s) ends: the
    # beat's requeue_stale_jobs publishes them; here we ask for it directly.
    time.sleep(4.5)
    pipeline.runtime.celery.send_task(REQUEUE_TASK)
    pipeline.wait_final(*jobs, seconds=45)
    assert all(pipeline.status(j) == "delivered" for j in jobs)
    ids = [m.message["Message-ID"] for m in pipeline.server.messages]
    assert sorted(ids) == sorted(f"<{j}@example.test>" for j in jobs), "each exactly once"


def test_jobs_survive_a_flushed_broker(pipeline: Pipeline, redis_server: str) -> None:
    jobs = [send(pipeline, n) for n in range(50)]
    redis.Redis.from_url(redis_server).flushall()  # the broker lost everything
    time.sleep(1.1)  # past the requeue grace period
    pipeline.start_worker()
    pipeline.runtime.celery.send_task(REQUEUE_TASK)
    pipeline.wait_final(*jobs, seconds=60)
    assert all(pipeline.status(j) == "delivered" for j in jobs)
    assert len(pipeline.server.messages) == 50


def test_rate_limited_jobs_wait_without_counting_an_attempt(pipeline: Pipeline) -> None:
    rt = pipeline.runtime
    profile = rt.profiles.get("alerts")
    rt.profiles.by_name["alerts"] = profile.model_copy(update={"rate_per_minute": 30})  # type: ignore[index]
    frozen = time.time()
    rt.limiter = RateLimiter(rt.redis, clock=lambda: frozen)
    jobs = [send(pipeline, n) for n in range(40)]
    decisions = [deliver(job_id, rt, worker="test") for job_id in jobs]
    # This configuration lets the broker hold delays of 2 s at most: the rest
    # wait in the database for requeue_stale_jobs.
    # Normal priority fills 80% of the limit (rate_share_normal): 24 of 30 a minute.
    assert [d.action for d in decisions] == ["done"] * 24 + ["wait"] * 16
    assert all(55 <= d.countdown_seconds <= 61 for d in decisions[24:])
    assert len(pipeline.server.messages) == 24
    waiting = rt.store.get_job(jobs[-1])
    assert waiting is not None
    assert (waiting.status, waiting.attempt_count) == ("queued", 0)
    assert waiting.next_attempt_at is not None
    assert waiting.next_attempt_at > datetime.now(UTC) + timedelta(seconds=50)


def test_secrets_never_reach_the_broker_the_database_or_the_logs(
    pipeline: Pipeline, redis_server: str
) -> None:
    job_id = send(pipeline)
    broker = redis.Redis.from_url(redis_server)
    (raw,) = broker.lrange("mail", 0, -1)
    message = json.loads(raw)
    assert json.loads(base64.b64decode(message["body"]))[0] == [job_id]
    assert message["headers"]["argsrepr"] == repr((job_id,)), "what Flower shows"
    assert CLIENT_SECRET not in raw.decode()
    pipeline.start_worker()
    pipeline.wait_final(job_id)
    token = pipeline.idp.issued_access_tokens[0]
    with pipeline.runtime.store.engine.connect() as connection:
        for table in ("jobs", "attempts", "attempt_recipients", "refresh_tokens"):
            for row in connection.execute(sqlalchemy.text(f"SELECT * FROM {table}")):  # noqa: S608
                text = " ".join(str(v) for v in row)
                assert CLIENT_SECRET not in text
                assert token not in text
    for key in broker.scan_iter():
        if broker.type(key) == b"list":
            values = b" ".join(broker.lrange(key, 0, -1))
            assert CLIENT_SECRET.encode() not in values
            assert token.encode() not in values


def test_a_worker_refuses_an_out_of_date_schema(pipeline: Pipeline, tmp_path: Path) -> None:
    (tmp_path / "old.db").touch()  # a database that exists, without mailpipe's tables
    env = {**pipeline.env, "MAILPIPE_DATABASE_URL": f"sqlite:///{tmp_path / 'old.db'}"}
    result = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "worker", "worker", "-P", "solo"],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert result.stderr.strip().splitlines()[-1] == (
        f"mailpipe: error: the database schema is at nothing, this mailpipe needs {head}: "
        "run `mailpipe db upgrade`"
    )


def test_rabbitmq_works_as_the_broker(rabbitmq_url: str, pipeline: Pipeline) -> None:
    # A fresh vhost: no leftovers of an earlier run to purge, and nobody else's queues.
    pipeline.env["MAILPIPE_BROKER_URL"] = rabbitmq_url
    pipeline.start_worker()
    # Producers in their own processes, configured by the environment as in production.
    mailpipe = str(Path(sys.executable).parent / "mailpipe")
    for n in range(3):
        sent = subprocess.run(
            [mailpipe, "send", "--profile", "alerts", "--to", "oncall@example.test",
             "--subject", f"via RabbitMQ {n}", "--text", "t", "--priority",
             "high" if n % 2 else "normal", "--wait", "30"],
            env=pipeline.env, cwd=REPO, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert sent.returncode == 0, sent.stdout + sent.stderr
    assert subjects(pipeline) == ["via RabbitMQ 0", "via RabbitMQ 1", "via RabbitMQ 2"]
    with Connection(rabbitmq_url) as connection:  # the worker's queues are the vhost's
        for name in ("mail", "mail.critical"):
            connection.default_channel.queue_declare(queue=name, passive=True)


def test_an_unexpected_error_is_an_attempt_so_the_job_cannot_loop_forever(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch, secrets: SecretRegistry
) -> None:
    secrets.add("secret-looking detail")  # nor may it reach a log line
    rt = pipeline.runtime
    job_id = send(pipeline)

    def broken(*args: object) -> None:
        raise RuntimeError("secret-looking detail that must not be stored")

    monkeypatch.setattr(rt.transport, "send_many", broken)
    for _ in range(rt.settings.retry_max_attempts):
        with rt.store.session() as session:  # skip the backoff wait
            session.execute(sqlalchemy.update(Job).values(next_attempt_at=None))
        deliver(job_id, rt, worker="test")
    job = rt.store.get_job(job_id)
    assert job is not None
    assert (job.status, job.attempt_count) == ("failed", rt.settings.retry_max_attempts)
    assert job.attempts[0].text == "unexpected RuntimeError"
    assert all("secret-looking" not in a.text for a in job.attempts)
