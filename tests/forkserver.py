"""Celery workers and beats forked from one interpreter that has imported them already.

A pipeline test starts its own Celery processes; each started from a fresh interpreter
spent about two seconds of CPU importing Celery and mailpipe before it did anything, in
every one of some two hundred tests. Here a server process (one per test process, started
on first use) imports them once and forks each worker on request. The child takes the
test's environment, working directory and log file, re-reads mailpipe's settings from
that environment and runs Celery's own command line, as ``python -m celery`` does: the
same worker, minus the imports. Tests that are about a worker's start itself
(tests/deploy, the producer's imports, the CLI's start-up) still start a fresh one.

The server is single-threaded (it checks), so forking it is safe; it reaps its children
and writes each one's exit status to a file the test's handle reads.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

# What a worker or a beat imports at its start, imported by the server once.
PRELOAD = (
    "celery.bin.celery",
    "celery.apps.worker",
    "celery.apps.beat",
    "celery.worker.consumer",
    "celery.concurrency.thread",
    "celery.concurrency.prefork",
    "kombu.transport.redis",
    "kombu.transport.pyamqp",
    "worker.celery",
    "worker.runtime",
)


class ForkedProcess:
    """The part of ``subprocess.Popen`` the tests use, for a process the server forked."""

    def __init__(self, pid: int, argv: list[str], status: Path) -> None:
        self.pid = pid
        self.args = argv
        self.returncode: int | None = None
        self._status = status  # written (renamed into place) by the server once it reaped

    def poll(self) -> int | None:
        if self.returncode is None and self._status.exists():
            self.returncode = int(self._status.read_text())
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while (code := self.poll()) is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(self.args, timeout or 0.0)
            time.sleep(0.02)
        return code

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class ForkServer:
    """The test process's side: starts the server, asks it for processes."""

    def __init__(self, status_dir: Path) -> None:
        self._status_dir = status_dir
        self._lock = threading.Lock()
        self._server: subprocess.Popen[str] | None = None

    def start(self, argv: list[str], env: dict[str, str], cwd: Path, log: Path) -> ForkedProcess:
        """``celery`` with ``argv`` (without the program name), as a process group of its own."""
        with self._lock:
            server = self._running()
            assert server.stdin is not None and server.stdout is not None
            request = {"argv": argv, "env": env, "cwd": str(cwd), "log": str(log)}
            server.stdin.write(json.dumps(request) + "\n")
            server.stdin.flush()
            answer = server.stdout.readline().split()
        if len(answer) != 2 or not all(part.isdigit() for part in answer):
            raise RuntimeError(f"the fork server did not start celery {argv}: {answer!r}")
        pid, number = answer
        return ForkedProcess(int(pid), ["celery", *argv], self._status_dir / number)

    def close(self) -> None:
        if self._server is not None:
            with self._server:  # closes its pipes
                self._server.kill()
            self._server = None

    def _running(self) -> subprocess.Popen[str]:
        if self._server is None or self._server.poll() is not None:
            self._status_dir.mkdir(parents=True, exist_ok=True)
            self._server = subprocess.Popen(
                [sys.executable, "-m", "tests.forkserver", str(self._status_dir)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                cwd=Path(__file__).parents[1],
            )  # fmt: skip
        return self._server


def _serve(status_dir: Path) -> None:
    for name in PRELOAD:
        importlib.import_module(name)
    from worker.celery import app

    for name in app.conf.include:  # the task modules, as the worker imports them
        importlib.import_module(name)
    if threading.active_count() != 1:  # a fork copies only the forking thread
        raise SystemExit(f"the fork server has threads: {threading.enumerate()}")

    # Each child's exit status goes to a file named by the child's number, not its pid:
    # pids are reused (pid_max may be 32768) in a run that starts thousands of processes.
    numbers: dict[int, int] = {}

    def reap(_signum: int, _frame: object) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            partial = status_dir / f".{pid}"
            partial.write_text(str(os.waitstatus_to_exitcode(status)))
            partial.rename(status_dir / str(numbers.pop(pid)))

    signal.signal(signal.SIGCHLD, reap)
    for number, line in enumerate(sys.stdin):
        request = json.loads(line)
        sys.stdout.flush()
        # Held until the child's number is noted, so that a child that ends at once is
        # reaped after that.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
        pid = os.fork()
        if pid == 0:  # never returns
            _child(request["argv"], request["env"], request["cwd"], request["log"])
        numbers[pid] = number
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
        print(pid, number, flush=True)


def _child(argv: list[str], env: dict[str, str], cwd: str, log_path: str) -> None:
    code = 1
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
        os.setsid()
        log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(null)
        os.close(log)
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(env)
        sys.argv = ["celery", *argv]
        code = _run_celery()
    except BaseException:  # a child must never return into the server's loop
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _run_celery() -> int:
    """Celery's command line, after the app takes this process's settings."""
    from celery.bin.celery import main

    from worker.queue.celery_app import _settings_or_exit, app, celery_config
    from worker.settings import get_settings

    get_settings.cache_clear()  # the server's were read from the server's environment
    try:
        app.conf.update(celery_config(_settings_or_exit()))
        main()
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


if __name__ == "__main__":
    _serve(Path(sys.argv[1]))
