"""`mailpipe sandbox`: a local OAuth token endpoint and SMTP server to try mailpipe on.

The SMTP server speaks STARTTLS with a freshly made CA, accepts only XOAUTH2
tokens that its token endpoint issued, and writes each message it receives to
``outbox/`` as an .eml file. It also writes a profiles file with a "sandbox"
profile pointing at both. Nothing here is meant for production.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import secrets
import signal
import ssl
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import MISSING, SMTP, AuthResult, Envelope, Session

from worker.faces.relay.users import hash_password
from worker.transport.smtp.sasl import parse_xoauth2

log = logging.getLogger(__name__)

CLIENT_ID = "mailpipe-sandbox"
CLIENT_SECRET = "sandbox-client-secret"  # a sandbox credential, not a secret


class _Tokens:
    def __init__(self) -> None:
        self.issued: set[str] = set()
        self.lock = threading.Lock()

    def issue(self) -> str:
        token = secrets.token_urlsafe(32)
        with self.lock:
            self.issued.add(token)
        return token

    def valid(self, token: str) -> bool:
        with self.lock:
            return token in self.issued


def _token_handler(tokens: _Tokens) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            if form.get("client_id") != CLIENT_ID or form.get("client_secret") != CLIENT_SECRET:
                self._reply(401, {"error": "invalid_client", "error_description": "unknown client"})
            elif form.get("grant_type") != "client_credentials":
                self._reply(400, {"error": "unsupported_grant_type"})
            else:
                body = {"access_token": tokens.issue(), "token_type": "Bearer", "expires_in": 3600}
                self._reply(200, body)

        def _reply(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            log.info("token endpoint: " + format, *args)

    return Handler


async def check_xoauth2(
    server: SMTP, args: list[str], token_ok: Callable[[str], bool]
) -> AuthResult:
    """aiosmtpd's answer to AUTH XOAUTH2 (initial response or after a 334), given who is valid."""
    if len(args) > 1:
        try:
            response: Any = base64.b64decode(args[1], validate=True)
        except binascii.Error:
            return AuthResult(success=False, handled=False, message="501 5.5.2 Bad base64")
    else:
        response = await server.challenge_auth("")
        if response is MISSING:
            return AuthResult(success=False, handled=True)
    parsed = parse_xoauth2(response)
    if parsed and token_ok(parsed[1]):
        return AuthResult(success=True, auth_data=parsed[0])
    return AuthResult(
        success=False, handled=False, message="535 5.7.8 Authentication credentials invalid"
    )


class _SmtpHandler:
    def __init__(self, tokens: _Tokens, outbox: Path) -> None:
        self.tokens = tokens
        self.outbox = outbox
        self.count = 0

    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:
        return await check_xoauth2(server, args, self.tokens.valid)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.count += 1
        name = f"{time.strftime('%Y%m%d-%H%M%S')}-{self.count:04d}.eml"
        content = envelope.original_content or b""
        (self.outbox / name).write_bytes(content)
        log.info("sandbox SMTP: message for %s written to outbox/%s", envelope.rcpt_tos, name)
        return f"250 2.0.0 OK queued as sandbox-{self.count}"


def _relay_files(directory: Path, certificate: trustme.LeafCert) -> str:
    """The relay's certificate and key, and a new password for its sandbox user (mode 600)."""
    certificate.cert_chain_pems[0].write_to_path(str(directory / "relay-cert.pem"))
    key = directory / "relay-key.pem"
    key.touch(mode=0o600)
    certificate.private_key_pem.write_to_path(str(key))
    password = secrets.token_urlsafe(16)
    secret = directory / "relay-password"
    secret.touch(mode=0o600)
    secret.write_text(password + "\n")
    return password


def run_sandbox(directory: Path, outbox: Path, token_port: int, smtp_port: int) -> None:
    """Serve until SIGINT/SIGTERM; writes ``directory/profiles.toml`` and ``ca.pem``."""
    directory.mkdir(parents=True, exist_ok=True)
    outbox.mkdir(parents=True, exist_ok=True)
    logging.getLogger("mail.log").setLevel(logging.ERROR)  # aiosmtpd's own chatter
    ca = trustme.CA()
    ca_file = directory / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificate = ca.issue_cert("127.0.0.1", "localhost")
    certificate.configure_cert(context)
    relay_password = _relay_files(directory, certificate)

    tokens = _Tokens()
    http = ThreadingHTTPServer(("127.0.0.1", token_port), _token_handler(tokens))
    threading.Thread(target=http.serve_forever, daemon=True).start()
    smtp = Controller(
        _SmtpHandler(tokens, outbox),
        hostname="127.0.0.1",
        port=smtp_port,
        tls_context=context,
        require_starttls=True,
        auth_required=True,
        auth_require_tls=True,
        auth_exclude_mechanism=["LOGIN", "PLAIN"],
    )
    smtp.start()
    (directory / "profiles.toml").write_text(
        f"""# Written by `mailpipe sandbox`: a local token endpoint and SMTP server.
[profiles.sandbox]
host = "127.0.0.1"
port = {smtp_port}
security = "starttls"
ca_file = "ca.pem"
from_email = "alerts@sandbox.example"
from_name = "mailpipe sandbox"
auth = "oauth"
grant = "client_credentials"
token_url = "http://127.0.0.1:{token_port}/token"
allow_insecure_token_url = true
client_id = "{CLIENT_ID}"
client_secret = "{CLIENT_SECRET}"
scope = "smtp.send"

# `mailpipe relay` lets tools that only know a password send as "sandbox";
# the password is in relay-password, the relay's certificate in relay-cert.pem.
[relay.users.sandbox]
profile = "sandbox"
password_hash = "{hash_password(relay_password)}"
"""
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(
        f"sandbox: token endpoint http://127.0.0.1:{token_port}/token, SMTP STARTTLS "
        f"127.0.0.1:{smtp_port}, messages in {outbox}/, profile in {directory}/profiles.toml",
        flush=True,
    )
    stop.wait()
    smtp.stop()
    http.shutdown()
