"""A private Dovecot: its ``submission`` server, and its auth service for Postfix and Exim.

Users log in with a password (passwd-file, PLAIN and LOGIN) or with an OAuth token
(XOAUTH2, OAUTHBEARER), which Dovecot's ``oauth2`` passdb checks by introspection
(RFC 7662) at the test token endpoint. The submission server relays every message it
accepts to ``relay`` (the test's sink). Postfix reaches the auth service over TCP, Exim
over the unix socket ``auth_socket``. Its processes run as the users Debian's package
created (dovecot, dovenull); mail sessions as nobody.
"""

from __future__ import annotations

import pwd
import subprocess
from pathlib import Path

from tests.fakes.smtp_server import TlsFiles
from tests.interop.daemons import (
    copy_tls,
    private_directory,
    remove_directory,
    require,
    require_root,
    stop,
    tail,
    wait_listening,
)
from tests.support import free_port

MECHANISMS = "plain login xoauth2 oauthbearer"


class Dovecot:
    def __init__(
        self,
        *,
        tls: TlsFiles,
        introspection_url: str,
        passwords: dict[str, str],
        relay: tuple[str, int] | None = None,
        imap: bool = False,
    ) -> None:
        require_root("Dovecot's master")
        self.binary = require("dovecot", "Debian packages dovecot-core, dovecot-submissiond")
        self.tls = tls
        self.introspection_url = introspection_url
        self.passwords = passwords
        self.relay = relay
        self.directory = private_directory("dovecot")
        self.submission_port = free_port() if relay else None
        self.imap_port = free_port() if imap else None  # IMAP over TLS (993's kind)
        self.auth_port = free_port()
        self.auth_socket = self.directory / "run" / "auth-client"
        self.log = self.directory / "dovecot.log"
        self.config = self.directory / "dovecot.conf"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        config = self._write_config()
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [self.binary, "-F", "-c", str(config)],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        ports = [self.auth_port] + ([self.submission_port] if self.submission_port else [])
        ports += [self.imap_port] if self.imap_port else []
        wait_listening(ports, self.process, self.log)

    def stop(self) -> None:
        stop(self.process)
        remove_directory(self.directory)

    def panics(self) -> list[str]:
        """Dovecot's own report of a crash: "Panic:" and "Fatal:" lines in its log."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return [line for line in text.splitlines() if "Panic:" in line or "Fatal:" in line]

    def log_tail(self) -> str:
        return tail(self.log)

    def _write_config(self) -> Path:
        d = self.directory
        cert, key = copy_tls(self.tls, d)
        (d / "home").mkdir()
        (d / "home").chmod(0o1777)
        passwd = d / "passwd"
        passwd.write_text("".join(f"{u}:{{PLAIN}}{p}::::::\n" for u, p in self.passwords.items()))
        passwd.chmod(0o644)
        oauth2 = d / "oauth2.conf.ext"
        oauth2.write_text(
            f"introspection_mode = post\n"
            f"introspection_url = {self.introspection_url}\n"
            f"username_attribute = username\n"
            f"active_attribute = active\n"
            f"active_value = true\n"
        )
        oauth2.chmod(0o644)
        nobody = pwd.getpwnam("nobody")  # the user mail sessions run as
        protocols = (
            " ".join(p for p, on in (("submission", self.relay), ("imap", self.imap_port)) if on)
            or "none"
        )
        # doveadm looks a user up without a password: the static userdb answers for anyone.
        all_users = " allow_all_users=yes" if self.imap_port else ""
        config = d / "dovecot.conf"
        config.write_text(f"""
base_dir = {d}/run
state_dir = {d}/state
instance_name = mailpipe-{self.auth_port}
log_path = {self.log}
protocols = {protocols}
listen = 127.0.0.1
ssl = required
ssl_cert = <{cert}
ssl_key = <{key}
hostname = dovecot.interop.test
auth_mechanisms = {MECHANISMS}
disable_plaintext_auth = yes
auth_failure_delay = 0
default_internal_user = dovecot
default_internal_group = dovecot
default_login_user = dovenull
first_valid_uid = 500
mail_location = maildir:{d}/home/%u/Maildir
passdb {{
  driver = passwd-file
  mechanisms = plain login
  args = {passwd}
}}
passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {oauth2}
}}
userdb {{
  driver = static
  args = uid={nobody.pw_uid} gid={nobody.pw_gid} home={d}/home/%u{all_users}
}}
service auth {{
  unix_listener auth-client {{
    mode = 0666
  }}
  inet_listener auth {{
    address = 127.0.0.1
    port = {self.auth_port}
  }}
}}
{self._submission_config()}
{self._imap_config()}
""")
        self.config = config
        return config

    def _imap_config(self) -> str:
        if self.imap_port is None:
            return ""
        return f"""
service imap-login {{
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {self.imap_port}
    ssl = yes
  }}
}}
"""

    def save(self, user: str, message: bytes, folder: str = "INBOX") -> None:
        """Put ``message`` in ``user``'s ``folder`` as delivery would (``doveadm save``)."""
        self.doveadm("save", "-u", user, "-m", folder, input=message)

    def create_folder(self, user: str, folder: str) -> None:
        self.doveadm("mailbox", "create", "-u", user, folder)

    def folder_count(self, user: str, folder: str) -> int:
        out = self.doveadm("mailbox", "status", "-u", user, "messages", folder)
        return int(out.split("=", 1)[1])

    def doveadm(self, *args: str, input: bytes = b"") -> str:
        doveadm = require("doveadm", "Debian package dovecot-core")
        done = subprocess.run(
            [doveadm, "-c", str(self.config), *args],
            input=input, capture_output=True, timeout=30,
        )  # fmt: skip
        if done.returncode != 0:
            raise AssertionError(f"doveadm {args[0]}: {done.stderr.decode(errors='replace')}")
        return done.stdout.decode()

    def _submission_config(self) -> str:
        if self.relay is None:
            return ""
        host, port = self.relay
        return f"""
submission_relay_host = {host}
submission_relay_port = {port}
submission_relay_trusted = no
submission_relay_ssl = no
service submission-login {{
  inet_listener submission {{
    address = 127.0.0.1
    port = {self.submission_port}
  }}
}}
"""
