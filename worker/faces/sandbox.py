"""`mailpipe sandbox`: a local OAuth provider and SMTP server to try mailpipe on.

The SMTP server speaks STARTTLS with a freshly made CA, accepts only XOAUTH2
tokens that its OAuth provider (``sandbox_idp``) issued, and writes each
message it receives to ``outbox/`` as an .eml file. It also writes a profiles
file: an app-only profile "sandbox", a delegated profile "sandbox-oncall" that
``mailpipe oauth authorize`` signs in, a route "oncall" and a relay user.
Nothing here is meant for production.
"""

from __future__ import annotations

import base64
import binascii
import logging
import secrets
import signal
import ssl
import threading
import time
from collections.abc import Callable
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import MISSING, SMTP, AuthResult, Envelope, Session
from cryptography.fernet import Fernet

from worker.errors import ConfigError
from worker.faces.relay.users import hash_password
from worker.faces.sandbox_idp import (
    APP_CLIENT_ID,
    APP_CLIENT_SECRET,
    SIGN_IN_CLIENT_ID,
    USER,
    SandboxIdP,
    idp_handler,
)
from worker.transport.smtp.sasl import parse_xoauth2

log = logging.getLogger(__name__)
T = TypeVar("T")


async def check_xoauth2(
    server: SMTP, args: list[str], accepts: Callable[[str, str], bool]
) -> AuthResult:
    """aiosmtpd's answer to AUTH XOAUTH2 (initial response or after a 334).

    ``accepts(user, token)`` says whether the token lets that user in.
    """
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
    if parsed and accepts(*parsed):
        return AuthResult(success=True, auth_data=parsed[0])
    return AuthResult(
        success=False, handled=False, message="535 5.7.8 Authentication credentials invalid"
    )


class _SmtpHandler:
    def __init__(self, idp: SandboxIdP, outbox: Path) -> None:
        self.idp = idp
        self.outbox = outbox
        self.count = 0

    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:
        return await check_xoauth2(server, args, self.idp.accepts)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.count += 1
        name = f"{time.strftime('%Y%m%d-%H%M%S')}-{self.count:04d}.eml"
        content = envelope.original_content or b""
        (self.outbox / name).write_bytes(content)
        log.info("sandbox SMTP: message for %s written to outbox/%s", envelope.rcpt_tos, name)
        return f"250 2.0.0 OK queued as sandbox-{self.count}"


def _private_file(path: Path, content: str) -> None:
    path.touch(mode=0o600)
    path.write_text(content)


def _relay_files(directory: Path, certificate: trustme.LeafCert) -> str:
    """The relay's certificate and key, and a new password for its sandbox user (mode 600)."""
    certificate.cert_chain_pems[0].write_to_path(str(directory / "relay-cert.pem"))
    _private_file(directory / "relay-key.pem", certificate.private_key_pem.bytes().decode())
    password = secrets.token_urlsafe(16)
    _private_file(directory / "relay-password", password + "\n")
    return password


def _token_key(directory: Path) -> bytes:
    """The key the sandbox's tokens are sealed with; kept, so that they outlive a restart."""
    path = directory / "token-key"
    if not path.exists():
        _private_file(path, Fernet.generate_key().decode())
    return path.read_bytes().strip()


def profiles_toml(token_port: int, smtp_port: int, relay_password_hash: str) -> str:
    """The sandbox's profiles file: an app-only and a delegated profile, a route, a relay user."""
    idp = f"http://127.0.0.1:{token_port}"
    server = f"""host = "127.0.0.1"
port = {smtp_port}
security = "starttls"
ca_file = "ca.pem"
auth = "oauth"
allow_insecure_token_url = true  # plain http: the sandbox's endpoint is on loopback"""
    return f"""# Written by `mailpipe sandbox`: a local token endpoint and SMTP server.

# App-only (client credentials), as a Microsoft 365 app with SMTP.SendAsApp.
[profiles.sandbox]
{server}
from_email = "alerts@sandbox.example"
from_name = "mailpipe sandbox"
grant = "client_credentials"
token_url = "{idp}/token"
client_id = "{APP_CLIENT_ID}"
client_secret = "{APP_CLIENT_SECRET}"
scope = "smtp.send"

# Delegated (refresh token, rotated on every use): sign in once with
# `mailpipe oauth authorize sandbox-oncall` (or --device, or --paste).
[profiles.sandbox-oncall]
{server}
from_email = "{USER}"
from_name = "mailpipe sandbox on-call"
grant = "refresh_token"
token_url = "{idp}/token"
authorize_url = "{idp}/authorize"
device_authorization_url = "{idp}/devicecode"
client_id = "{SIGN_IN_CLIENT_ID}"
scope = "smtp.send offline_access"

# Where webhooks with ?route=oncall go.
[routes.oncall]
profile = "sandbox"
to = ["oncall@example.test"]
priority = "high"

# `mailpipe relay` lets tools that only know a password send as "sandbox";
# the password is in relay-password, the relay's certificate in relay-cert.pem.
[relay.users.sandbox]
profile = "sandbox"
password_hash = "{relay_password_hash}"
"""


def _listen(what: str, port: int, start: Callable[[], T]) -> T:
    try:
        return start()
    except OSError as exc:
        raise ConfigError(f"the sandbox's {what} cannot listen on 127.0.0.1:{port}: "
                          f"{exc.strerror or exc}") from None  # fmt: skip


def run_sandbox(directory: Path, outbox: Path, token_port: int, smtp_port: int) -> None:
    """Serve until SIGINT/SIGTERM; writes ``directory/profiles.toml`` and ``ca.pem``."""
    directory.mkdir(parents=True, exist_ok=True)
    outbox.mkdir(parents=True, exist_ok=True)
    (directory / "profiles.toml").unlink(missing_ok=True)  # its appearance says "ready"
    logging.getLogger("mail.log").setLevel(logging.ERROR)  # aiosmtpd's own chatter
    ca = trustme.CA()
    ca_file = directory / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificate = ca.issue_cert("127.0.0.1", "localhost")
    certificate.configure_cert(context)
    relay_password = _relay_files(directory, certificate)

    idp = SandboxIdP(_token_key(directory), f"http://127.0.0.1:{token_port}")
    address, handler = ("127.0.0.1", token_port), idp_handler(idp)
    http = _listen("token endpoint", token_port, lambda: ThreadingHTTPServer(address, handler))
    threading.Thread(target=http.serve_forever, daemon=True).start()
    smtp = Controller(
        _SmtpHandler(idp, outbox),
        hostname="127.0.0.1",
        port=smtp_port,
        tls_context=context,
        require_starttls=True,
        auth_required=True,
        auth_require_tls=True,
        auth_exclude_mechanism=["LOGIN", "PLAIN"],
    )
    _listen("SMTP server", smtp_port, smtp.start)
    # Written whole, then renamed: whoever waits for the file never reads half of it.
    written = directory / "profiles.toml.new"
    written.write_text(profiles_toml(token_port, smtp_port, hash_password(relay_password)))
    written.replace(directory / "profiles.toml")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(
        f"sandbox: token endpoint http://127.0.0.1:{token_port}/token, SMTP STARTTLS "
        f"127.0.0.1:{smtp_port}, messages in {outbox}/, profiles in {directory}/profiles.toml",
        flush=True,
    )
    stop.wait()
    smtp.stop()
    http.shutdown()
