"""The two baselines, as Celery tasks on their own app.

    celery -A bench.run.yardsticks.baselines worker

ideal: smtplib over one persistent connection per process (per thread in a
threads pool), no records, no tokens: the best a Celery task can do. It goes
through the same SMTP front as mailpipe, without AUTH, so both pay the same
way to the sink. naive: fetch a token and open a new
SMTP connection per message, authenticating each time (what peers do for OAuth
today). Each task notes in Redis when the first one started and the last one
ended, and counts itself done, so the harness can time the drain.
"""

from __future__ import annotations

import base64
import json
import os
import smtplib
import threading
import time
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
# One connection per process (prefork) or per thread (threads pool).
_local = threading.local()


with open(os.environ["BENCH_MESSAGE_FILE"], "rb") as _file:
    _TEMPLATE = _file.read()  # read once: the ideal task must not pay a file read per message


def _message(n: int) -> bytes:
    return _TEMPLATE.replace(b"{n}", str(n).encode())


def _started() -> None:
    _done.set("bench:first", time.time(), nx=True)


def _finished() -> None:
    _done.pipeline(transaction=False).set("bench:last", time.time()).incr("bench:done").execute()


@app.task(name="bench.ideal")
def ideal(n: int) -> None:
    _started()
    if getattr(_local, "connection", None) is None:
        host, port = os.environ["BENCH_FRONT"].split(":")
        _local.connection = smtplib.SMTP(host, int(port))
        _local.connection.ehlo()
    _local.connection.sendmail("alerts@bench.test", ["oncall@bench.test"], _message(n))
    _finished()


@app.task(name="bench.naive")
def naive(n: int) -> None:
    _started()
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
    _finished()
