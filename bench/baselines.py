"""The two baselines, as Celery tasks on their own app: ``celery -A bench.baselines worker``.

ideal: smtplib over one persistent connection per process, no records, no
tokens (the best a Celery task can do). naive: fetch a token and open a new
SMTP connection per message, authenticating each time (what peers do for OAuth
today). Each task counts itself done in Redis so the harness knows when a run
has finished.
"""

from __future__ import annotations

import base64
import json
import os
import smtplib
import urllib.parse
import urllib.request

import redis
from celery import Celery

app = Celery("bench", broker=os.environ["BENCH_BROKER_URL"])
app.conf.update(
    task_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    task_default_queue="bench",
    broker_connection_retry_on_startup=True,
)
_done = redis.Redis.from_url(os.environ["BENCH_BROKER_URL"])
_connection: smtplib.SMTP | None = None


def _message(n: int) -> bytes:
    with open(os.environ["BENCH_MESSAGE_FILE"], "rb") as f:
        return f.read().replace(b"{n}", str(n).encode())


@app.task(name="bench.ideal")
def ideal(n: int) -> None:
    global _connection
    if _connection is None:
        host, port = os.environ["BENCH_SINK"].split(":")
        _connection = smtplib.SMTP(host, int(port))
        _connection.ehlo()
    _connection.sendmail("alerts@bench.test", ["oncall@bench.test"], _message(n))
    _done.incr("bench:done")


@app.task(name="bench.naive")
def naive(n: int) -> None:
    form = urllib.parse.urlencode(
        {"grant_type": "client_credentials", "client_id": "naive", "client_secret": "s"}
    ).encode()
    with urllib.request.urlopen(os.environ["BENCH_TOKEN_URL"], form, timeout=30) as response:  # noqa: S310
        token = json.loads(response.read())["access_token"]
    host, port = os.environ["BENCH_FRONT"].split(":")
    with smtplib.SMTP(host, int(port), timeout=30) as smtp:
        smtp.ehlo()
        xoauth2 = f"user=alerts@bench.test\x01auth=Bearer {token}\x01\x01"
        smtp.docmd("AUTH", "XOAUTH2 " + base64.b64encode(xoauth2.encode()).decode())
        smtp.sendmail("alerts@bench.test", ["oncall@bench.test"], _message(n))
    _done.incr("bench:done")
