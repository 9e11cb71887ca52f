"""The callback task: POST one of a job's events to its ``callback_url``, signed."""

from __future__ import annotations

import threading

import httpx
from celery import Task

from worker.delivery.callback_transport import CallbackTransport
from worker.delivery.callbacks import post_callback
from worker.queue import CALLBACK_TASK, app
from worker.runtime import get_runtime

_client: httpx.Client | None = None
_client_lock = threading.Lock()


@app.task(name=CALLBACK_TASK, bind=True, max_retries=None)
def send_callback(self: Task, callback_id: str) -> None:
    """POST callback ``callback_id`` (its id only: the event is read from the store).

    A receiver that does not take it gets it again after a backoff: a retry of
    this task, or, past what the broker should hold, the sweep when it is due.
    """
    decision = post_callback(get_runtime(), callback_id, _http_client())
    if decision.action == "retry":
        raise self.retry(countdown=decision.countdown_seconds)


def _http_client() -> httpx.Client:
    """One client per worker process, made after the fork: it sends only where
    MAILPIPE_CALLBACK_ALLOWED allows, through no proxy, and follows no redirect."""
    global _client
    with _client_lock:
        if _client is None:
            policy = get_runtime().settings.callback_policy()
            _client = httpx.Client(
                transport=CallbackTransport(policy), follow_redirects=False, trust_env=False
            )
        return _client
