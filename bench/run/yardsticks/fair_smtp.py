"""A fair yardstick for the SMTP relay: parse the message, insert and commit, LPUSH.

    BENCH_FAIR_DB=path BENCH_FAIR_REDIS=redis://... \
        python -m bench.run.yardsticks.fair_smtp PORT CERT KEY

discard_smtp.py's server (the relay's aiosmtpd options and certificate,
STARTTLS required, AUTH PLAIN) with a handler that does what a relay that
loses nothing must do at the least: parse the message (the standard library's
``email`` parser with the default policy, reading its Subject), insert one row
and commit, LPUSH the id to Redis (fair_store.py), then answer 250. The
work runs in the event loop, as the simplest handler would: SQLite's commit
with synchronous=NORMAL takes well under a millisecond.
"""

from __future__ import annotations

import email
import email.policy
import json
import sys

from aiosmtpd.smtp import SMTP, Envelope, Session

from bench.run.yardsticks.discard_smtp import serve
from bench.run.yardsticks.fair_store import FairStore


class Store:
    """aiosmtpd's handler: every message parsed, stored and queued before its 250."""

    def __init__(self, store: FairStore) -> None:
        self.store = store

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        data = envelope.original_content or b""
        message = email.message_from_bytes(data, policy=email.policy.default)
        recipients = json.dumps(envelope.rcpt_tos)
        self.store.add(envelope.mail_from or "", recipients, str(message["subject"] or ""), data)
        return "250 OK"


if __name__ == "__main__":
    serve(int(sys.argv[1]), sys.argv[2], sys.argv[3], Store(FairStore.from_env()), "fair")
