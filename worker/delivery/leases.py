"""Leases of the jobs this process is sending, renewed by one background thread.

A claimed job's lease is short (``send_lease_seconds``, 20 s) so that a job
whose worker died (SIGKILL, OOM, a lost node) is taken over within seconds,
not minutes. While this process lives, a thread renews the leases of every
job it is sending, in one statement every third of a lease. A send that is
still running after ``send_max_seconds`` is no longer renewed: Celery's
threads pool cannot stop a hung send, so its job is handed to another worker
(a late answer of the hung one cannot overwrite the new owner's record: every
write of a claim is conditional on its id).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta

from worker.errors import MailpipeError
from worker.settings import DEFAULTS
from worker.store import Store

log = logging.getLogger(__name__)


class Leases:
    """Thread-safe; one per process (the renewing thread starts again after a fork)."""

    def __init__(
        self,
        store: Store,
        *,
        lease_seconds: float = DEFAULTS.send_lease_seconds,
        max_hold_seconds: float = DEFAULTS.send_max_seconds,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.lease = timedelta(seconds=lease_seconds)
        self.renew_every_seconds = lease_seconds / 3
        self.max_hold_seconds = max_hold_seconds
        self._clock = clock
        self._held: dict[str, float] = {}  # claim id → when its send started
        self._guard = threading.Lock()
        self._stop = threading.Event()
        self._pid: int | None = None

    @contextmanager
    def hold(self, claim_id: str) -> Iterator[None]:
        """Keep renewing this claim's lease until the block ends."""
        self._ensure_thread()
        with self._guard:
            self._held[claim_id] = self._clock()
        try:
            yield
        finally:
            with self._guard:
                self._held.pop(claim_id, None)

    def renew_now(self) -> int:
        """Renew every lease still within its hold time; how many were still ours."""
        now = self._clock()
        with self._guard:
            claims = [c for c, t in self._held.items() if now - t < self.max_hold_seconds]
        if not claims:
            return 0
        try:
            return self.store.renew(claims, self.lease)
        except MailpipeError as exc:  # the database is down: the next round tries again
            log.warning("could not renew %d lease(s): %s", len(claims), exc)
            return 0

    def close(self) -> None:
        self._stop.set()

    def _ensure_thread(self) -> None:
        if self._pid == os.getpid():
            return
        with self._guard:
            if self._pid == os.getpid():
                return
            self._held.clear()  # a parent's claims are not this child's
            self._stop = threading.Event()
            thread = threading.Thread(target=self._run, name="mailpipe-leases", daemon=True)
            thread.start()
            self._pid = os.getpid()

    def _run(self) -> None:
        while not self._stop.wait(self.renew_every_seconds):
            self.renew_now()
