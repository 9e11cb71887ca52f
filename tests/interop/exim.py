"""A private Exim 4: a daemon on a free port, SASL by Dovecot, relaying to the test's sink.

Debian's exim4 and postfix packages conflict, so ``make tools`` extracts Exim's binary from
exim4-daemon-heavy (the build with the ``dovecot`` authenticator) into ``.tools/exim4``
instead of installing it. That binary looks up its user, Debian-exim, which only the exim4
package would create; nss_wrapper (libnss-wrapper) gives it a passwd file of its own.
Every message Exim accepts is delivered at once to the sink; a queue runner retries.
"""

from __future__ import annotations

import glob
import os
import subprocess
from pathlib import Path

import pytest

from tests.fakes.smtp_server import TlsFiles
from tests.interop.daemons import (
    REPO,
    copy_tls,
    private_directory,
    remove_directory,
    require_root,
    stop,
    tail,
    wait_listening,
)
from tests.support import free_port

EXIM = REPO / ".tools" / "exim4" / "usr" / "sbin" / "exim4"
# Exim's unprivileged user: the uid and gid of "nobody" (it only owns the private spool).
EXIM_UID = 65534
EXIM_USER = f"Debian-exim:x:{EXIM_UID}:{EXIM_UID}:Exim:/nonexistent:/usr/sbin/nologin\n"

AUTHENTICATOR = """
{name}:
  driver = dovecot
  public_name = {mechanism}
  server_socket = {socket}
  server_set_id = $auth1
"""


class Exim:
    def __init__(self, *, tls: TlsFiles, auth_socket: Path, relay: tuple[str, int]) -> None:
        require_root("Exim's daemon")
        if not EXIM.exists():
            pytest.fail(f"no Exim at {EXIM.relative_to(REPO)}: run `make test`, which installs it")
        wrappers = glob.glob("/usr/lib/*/libnss_wrapper.so")
        if not wrappers:
            pytest.fail(
                "nss_wrapper is not installed (libnss-wrapper): run `make test`, which installs it"
            )
        self.nss_wrapper = wrappers[0]
        self.tls = tls
        self.auth_socket = auth_socket
        self.relay = relay
        self.directory = private_directory("exim")
        self.port = free_port()
        self.log = self.directory / "log" / "mainlog"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        config = self._write_config()
        with (self.directory / "daemon.out").open("ab") as out:
            self.process = subprocess.Popen(
                [str(EXIM), "-C", str(config), "-bdf", "-q5s"],
                env=self._environment(), stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        wait_listening([self.port], self.process, self.directory / "daemon.out")

    def stop(self) -> None:
        stop(self.process)
        remove_directory(self.directory)

    def queued(self) -> int:
        """Messages still in the spool (accepted, not yet handed to the sink)."""
        return sum(1 for _ in (self.directory / "spool" / "input").rglob("*-H"))

    def log_tail(self) -> str:
        return tail(self.log)

    def _environment(self) -> dict[str, str]:
        passwd, group = self.directory / "passwd", self.directory / "group"
        passwd.write_text("root:x:0:0:root:/root:/bin/sh\n" + EXIM_USER)
        group.write_text(f"root:x:0:\nDebian-exim:x:{EXIM_UID}:\n")
        return {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "LD_PRELOAD": self.nss_wrapper,
            "NSS_WRAPPER_PASSWD": str(passwd),
            "NSS_WRAPPER_GROUP": str(group),
        }

    def _write_config(self) -> Path:
        d = self.directory
        cert, key = copy_tls(self.tls, d)
        for owned in (d / "spool", d / "log"):
            owned.mkdir()
            os.chown(owned, EXIM_UID, EXIM_UID)
        host, port = self.relay
        authenticators = "".join(
            AUTHENTICATOR.format(name=f"dovecot_{m.lower()}", mechanism=m, socket=self.auth_socket)
            for m in ("PLAIN", "LOGIN", "XOAUTH2", "OAUTHBEARER")
        )
        config = d / "exim.conf"
        config.write_text(f"""
exim_path = {EXIM}
exim_user = Debian-exim
exim_group = Debian-exim
spool_directory = {d}/spool
log_file_path = {d}/log/%slog
pid_file_path = {d}/exim.pid
primary_hostname = exim.interop.test
daemon_smtp_ports = {self.port}
local_interfaces = 127.0.0.1
keep_environment = LD_PRELOAD : NSS_WRAPPER_PASSWD : NSS_WRAPPER_GROUP : PATH
host_lookup =
rfc1413_hosts =
tls_certificate = {cert}
tls_privatekey = {key}
tls_advertise_hosts = *
auth_advertise_hosts = ${{if eq{{$tls_in_cipher}}{{}}{{}}{{*}}}}
smtp_accept_max = 100
smtp_accept_queue_per_connection = 0
acl_smtp_rcpt = acl_check_rcpt

begin acl

acl_check_rcpt:
  accept authenticated = *
  deny message = relay not permitted

begin routers

to_sink:
  driver = manualroute
  route_list = * {host}
  self = send
  transport = to_sink

begin transports

to_sink:
  driver = smtp
  port = {port}
  allow_localhost
  hosts_avoid_tls = *

begin retry

*  *  F,10m,1s

begin authenticators
{authenticators}
""")
        config.chmod(0o644)
        return config
