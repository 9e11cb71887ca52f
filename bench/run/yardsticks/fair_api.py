"""A fair yardstick for mailpipe's HTTP intake: validate, insert and commit, LPUSH.

    BENCH_FAIR_DB=path BENCH_FAIR_REDIS=redis://... BENCH_FAIR_KEY_SHA256=hex \
        python -m bench.run.yardsticks.fair_api PORT

What an endpoint that accepts a notification and loses none must do at the
least: check the bearer key (a SHA-256 digest compared in constant time, as
mailpipe keeps keys), validate the same JSON with pydantic (the fields and
limits of mailpipe's ``NotificationIn``), insert one row and commit, LPUSH the
id to Redis (fair_store.py), answer 202. Same route, a plain ``def`` in
the thread pool, same uvicorn settings as mailpipe and bare_api.py.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sys
from typing import Annotated, Literal

import uvicorn
from fastapi import FastAPI, Header, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from bench.run.yardsticks.fair_store import FairStore

app = FastAPI(title="fair")
_store: FairStore | None = None


class Notification(BaseModel):
    """mailpipe's ``NotificationIn`` without attachments (the bench sends none)."""

    model_config = ConfigDict(extra="forbid")

    profile: str = Field(min_length=1, max_length=64)
    to: list[str] = Field(default_factory=list, max_length=1000)
    cc: list[str] = Field(default_factory=list, max_length=1000)
    bcc: list[str] = Field(default_factory=list, max_length=1000)
    subject: str = Field(max_length=2000)
    text: str
    html: str | None = None
    reply_to: str | None = None
    headers: dict[str, str] = Field(default_factory=dict, max_length=50)
    priority: Literal["normal", "high"] = "normal"
    callback_url: str | None = Field(None, max_length=2000)


def _authorized(authorization: str | None) -> bool:
    scheme, _, key = (authorization or "").partition(" ")
    digest = hashlib.sha256(key.encode()).hexdigest()
    return scheme == "Bearer" and hmac.compare_digest(digest, os.environ["BENCH_FAIR_KEY_SHA256"])


@app.post("/v1/notifications", status_code=202)
def post_notification(
    body: Notification, authorization: Annotated[str | None, Header()] = None
) -> dict[str, str]:
    """Store the notification, queue its id, answer 202."""
    if not _authorized(authorization):
        raise HTTPException(401, "a valid API key is required")
    assert _store is not None
    recipients = json.dumps([*body.to, *body.cc, *body.bcc])
    job_id = _store.add(body.profile, recipients, body.subject, body.model_dump_json().encode())
    return {"id": job_id, "status_url": f"/v1/notifications/{job_id}"}


if __name__ == "__main__":
    _store = FairStore.from_env()
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=False, log_level="warning")
