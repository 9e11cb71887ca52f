"""A private Postfix: ``smtpd`` on a free port, SASL by Dovecot, relaying to the test's sink.

Its own configuration directory and queue in a private directory, started with
``postfix start-fg`` (the master stays in the foreground, so the fixture owns it). Its
binaries come from Debian's ``postfix`` package; the package's service is never started.
Authenticated clients may relay; the queue manager hands every message to the sink.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import signal
import subprocess
from pathlib import Path

from tests.fakes.smtp_server import TlsFiles
from tests.interop.daemons import (
    copy_tls,
    private_directory,
    remove_directory,
    require,
    require_root,
    signal_group,
    stop,
    tail,
    wait_listening,
)
from tests.support import free_port

# The services a relay needs (Debian's master.cf without local delivery and the pipes),
# none of them chrooted: the chroot would need copies of the system's files.
MASTER_CF = """\
{port}    inet  n       -       n       -       -       smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""

QUEUES = ("maildrop", "incoming", "active", "deferred", "hold")


class Postfix:
    def __init__(self, *, tls: TlsFiles, auth_port: int, relay: tuple[str, int]) -> None:
        require_root("Postfix's master")
        self.binary = require("postfix", "Debian package postfix")
        self.tls = tls
        self.auth_port = auth_port
        self.relay = relay
        self.directory = private_directory("postfix")
        self.port = free_port()
        self.log = self.directory / "postfix.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        etc = self._write_config()
        with (self.directory / "master.out").open("ab") as out:
            self.process = subprocess.Popen(
                [self.binary, "-c", str(etc), "start-fg"],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        wait_listening([self.port], self.process, self.directory / "master.out")

    def stop(self) -> None:
        # The master makes a session of its own: signal its group (it and its services).
        pid_file = self.directory / "queue" / "pid" / "master.pid"
        master = int(pid_file.read_text().split()[0]) if pid_file.exists() else None
        if master is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(master, signal.SIGTERM)
        stop(self.process)
        if master is not None:
            signal_group(master, signal.SIGKILL)
        remove_directory(self.directory)

    def queued(self) -> int:
        """Messages still in the queue (accepted, not yet handed to the sink)."""
        queue = self.directory / "queue"
        return sum(1 for q in QUEUES for p in (queue / q).rglob("*") if p.is_file())

    def log_tail(self) -> str:
        return tail(self.log)

    def _write_config(self) -> Path:
        d = self.directory
        etc = d / "etc"
        for sub in (etc, d / "queue", d / "data"):
            sub.mkdir()
        owner = pwd.getpwnam("postfix")
        os.chown(d / "data", owner.pw_uid, owner.pw_gid)
        cert, key = copy_tls(self.tls, d)
        host, port = self.relay
        (etc / "master.cf").write_text(MASTER_CF.format(port=f"127.0.0.1:{self.port}"))
        (etc / "main.cf").write_text(f"""\
compatibility_level = 3.6
queue_directory = {d}/queue
data_directory = {d}/data
maillog_file = {self.log}
maillog_file_prefixes = {d}
myhostname = postfix.interop.test
mydomain = interop.test
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
biff = no
relayhost = [{host}]:{port}
smtp_tls_security_level = none
smtpd_tls_cert_file = {cert}
smtpd_tls_key_file = {key}
smtpd_tls_security_level = may
smtpd_tls_auth_only = yes
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = dovecot
smtpd_sasl_path = inet:127.0.0.1:{self.auth_port}
smtpd_relay_restrictions = permit_sasl_authenticated, reject
smtpd_recipient_restrictions =
""")
        return etc
