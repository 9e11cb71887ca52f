"""What every real server the interop tests start needs: a private directory, free ports, a
binary to run (or a failure that says how to get it), and a wait until it listens.

The servers drop privileges to system users (dovenull, postfix, Debian-exim) that cannot
enter pytest's private temporary directories, so each server gets a short directory of its
own under the system's temporary directory, readable by all; the unix sockets in it also
stay under the 107 bytes a socket path may have.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.fakes.smtp_server import TlsFiles

REPO = Path(__file__).parents[2]


def private_directory(name: str) -> Path:
    """A fresh directory for one server, which its unprivileged processes can enter."""
    directory = Path(tempfile.mkdtemp(prefix=f"mailpipe-{name}-"))
    directory.chmod(0o755)
    return directory


def remove_directory(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)


def copy_tls(tls: TlsFiles, directory: Path) -> tuple[Path, Path]:
    """The test CA's server certificate and key, where a server's own user can read them."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    shutil.copyfile(tls.cert_pem, cert)
    shutil.copyfile(tls.key_pem, key)
    cert.chmod(0o644)
    key.chmod(0o644)  # a throwaway key for 127.0.0.1; the servers' users must read it
    return cert, key


def require(binary: str | Path, package: str) -> str:
    """The path of ``binary``; the test fails, naming the package, when it is missing."""
    path = shutil.which(str(binary))
    if path is None:
        pytest.fail(f"{binary} is not installed ({package}): run `make test`, which installs it")
    return path


def require_root(server: str) -> None:
    if os.geteuid() != 0:
        pytest.fail(f"{server} must be started as root (it drops privileges itself)")


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def wait_listening(
    ports: list[int], process: subprocess.Popen[bytes] | None, log: Path, seconds: float = 30
) -> None:
    """Wait until every port accepts connections; fail with the log's tail if it never does."""
    deadline = time.monotonic() + seconds
    while not all(listening(port) for port in ports):
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the server exited with {process.returncode}:\n{tail(log)}")
        if time.monotonic() > deadline:
            raise AssertionError(f"ports {ports} not listening after {seconds}s:\n{tail(log)}")
        time.sleep(0.05)


def wait_until(condition: Callable[[], bool], seconds: float, what: str) -> None:
    """Wait for a condition with a generous deadline; fail naming it if it never holds."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached in {seconds}s: {what}")
        time.sleep(0.05)


def tail(path: Path, lines: int = 20, width: int = 300) -> str:
    """The last lines of a log, each cut to ``width`` (Dovecot's backtraces are long)."""
    if not path.exists():
        return f"(no {path.name})"
    last = path.read_text(errors="replace").splitlines()[-lines:]
    return "\n".join(line[:width] for line in last)


def stop(process: subprocess.Popen[bytes] | None, seconds: float = 15) -> None:
    """Stop a server started in a session of its own, and whatever it started in it.

    Only the master gets SIGTERM: it stops its own processes in order (Dovecot's complain
    in its log when they are signalled behind its back)."""
    if process is None:
        return
    if process.poll() is None:
        process.terminate()
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(seconds)
    # Children that outlive their master (a crashed one, or a slow exit) go too.
    signal_group(process.pid, signal.SIGKILL)
    process.wait(5)


def signal_group(group: int, number: int) -> None:
    """Signal every process of a group, if any is left."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, number)
