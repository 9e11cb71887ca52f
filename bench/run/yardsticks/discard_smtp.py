"""An SMTP server that accepts every message and keeps none: the yardstick for the relay.

    python -m bench.run.yardsticks.discard_smtp PORT CERT_FILE KEY_FILE

The same aiosmtpd as `mailpipe relay`, with the same options, the same
certificate (STARTTLS required, AUTH only after it) and AUTH PLAIN, but any
password is accepted (no Argon2) and DATA answers 250 and drops the message:
what is left of the relay's figures is mailpipe's own work (the checks,
storing the job, queueing it).
"""

from __future__ import annotations

import signal
import ssl
import sys
import threading
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, Session

# mailpipe's default MAILPIPE_RELAY_MAX_MESSAGE_BYTES, so both advertise the same SIZE.
MAX_MESSAGE_BYTES = 10 * 1024 * 1024


class Discard:
    """aiosmtpd's handler: every message is accepted and forgotten."""

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        return "250 OK"


def any_password(*_: Any) -> AuthResult:
    """aiosmtpd's authenticator: every user name and password is good."""
    return AuthResult(success=True)


def serve(
    port: int, cert_file: str, key_file: str, handler: Any = None, name: str = "discard"
) -> None:
    """Serve on 127.0.0.1:``port`` until SIGTERM or SIGINT (``handler``: Discard by default;
    fair_smtp.py passes its own)."""
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert_file, key_file)
    controller = Controller(
        handler or Discard(),
        hostname="127.0.0.1",
        port=port,
        tls_context=tls,
        require_starttls=True,
        auth_require_tls=True,
        auth_required=True,
        authenticator=any_password,
        data_size_limit=MAX_MESSAGE_BYTES,
        enable_SMTPUTF8=True,
        decode_data=False,
        ready_timeout=10.0,
    )
    controller.start()
    print(f"{name}: listening on 127.0.0.1:{port}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    serve(int(sys.argv[1]), sys.argv[2], sys.argv[3])
