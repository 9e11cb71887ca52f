#!/usr/bin/env python3
"""The health check of every mailpipe process: ``mailpipe-healthcheck [ROLE] [--pid PID]``.

One image runs all of mailpipe's processes, so one check serves them all: it finds the process
(``--pid``, else the first process on this machine running ROLE, else the first mailpipe
process at all, which in a container is the one it runs) and checks it the way a client would,
with the address, port and paths read from that process's own command line:

    api     GET /healthz: 200 (liveness; /readyz, for traffic, is the orchestrator's probe)
    relay   a TCP connection answered with a 220 greeting
    flower  GET /healthcheck: 200 (Flower serves it without the basic auth)
    worker  `celery -A APP inspect ping` to this worker's node name: it answers
    beat    its schedule file written within the last 10 minutes (beat rewrites it every
            3 minutes while it ticks; a hung beat stops writing it)

Exit status 0 when healthy, 1 when not, with one line saying what was checked. The image
installs it as /opt/mailpipe/bin/mailpipe-healthcheck (deploy/Dockerfile); the compose file and
the Kubernetes manifests run it too. Standard library only; the worker check runs celery with
the interpreter that runs this script.
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

ROLES = ("worker", "beat", "flower", "api", "relay")
DEFAULT_PORTS = {"api": 8025, "relay": 2525, "flower": 5555}
BEAT_SCHEDULE_MAX_AGE_SECONDS = 600  # celery beat syncs its schedule file every 180 s
TIMEOUT_SECONDS = 5.0
# celery's global options that take a value (they stand before the sub-command).
CELERY_OPTIONS_WITH_VALUE = {"-A", "--app", "-b", "--broker", "--result-backend", "--loader",
                             "--config", "--workdir"}  # fmt: skip


class Unhealthy(Exception):
    """The process does not answer as it should; the message says what was seen."""


def role_of(argv: list[str]) -> str | None:
    """The mailpipe role a command line runs (``celery -A worker beat`` → beat), or None."""
    for index, word in enumerate(argv):
        name = os.path.basename(word)
        rest = argv[index + 1 :]
        if name == "mailpipe":
            commands = [w for w in rest if not w.startswith("-")]
            if commands and commands[0] in ("serve", "relay"):
                return "api" if commands[0] == "serve" else "relay"
            return None
        if name == "celery":
            command = celery_command(rest)
            return command if command in ("worker", "beat", "flower") else None
    return None


def celery_command(args: list[str]) -> str | None:
    skip = False
    for word in args:
        if skip:
            skip = False
        elif word in CELERY_OPTIONS_WITH_VALUE:
            skip = True
        elif not word.startswith("-"):
            return word
    return None


def option(argv: list[str], *names: str) -> str | None:
    """The value of the last of ``names`` given as ``--name value`` or ``--name=value``."""
    found = None
    for index, word in enumerate(argv):
        for name in names:
            if word == name and index + 1 < len(argv):
                found = argv[index + 1]
            elif word.startswith(name + "="):
                found = word.split("=", 1)[1]
    return found


def command_line(pid: int) -> list[str]:
    raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    return untitled([part.decode(errors="replace") for part in raw.split(b"\0") if part])


# Where setproctitle is installed, Celery replaces its processes' command lines with a
# title, cut to the length of the original:
#   [celeryd: celery@host:MainProcess] -active- (-A worker worker --loglevel INFO ...)
#   [celery beat] -A worker beat --loglevel INFO --schedule /data/celerybeat-schedule
_WORKER_TITLE = re.compile(r"\[celeryd: (?P<node>\S+?):\w+\] \S+ \((?P<args>[^)]*)\)?")
_BEAT_TITLE = "[celery beat] "


def untitled(argv: list[str]) -> list[str]:
    """The command line a Celery process title stands for; any other argv as it is."""
    text = " ".join(argv)
    if text.startswith(_BEAT_TITLE):
        return ["celery", *text.removeprefix(_BEAT_TITLE).split()]
    match = _WORKER_TITLE.fullmatch(text)
    if match is None:
        return argv
    args = match.group("args").split()
    if option(args, "-n", "--hostname") is None:
        args += ["-n", match.group("node")]
    return ["celery", *args]


def find_process(role: str | None) -> tuple[int, list[str]]:
    """The lowest pid running ``role`` (any role when None): a worker's pool shares its argv."""
    pids = sorted(int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit())
    for pid in pids:
        if pid == os.getpid():
            continue
        try:
            argv = command_line(pid)
        except OSError:  # gone meanwhile, or not ours to read
            continue
        found = role_of(argv)
        if found is not None and (role is None or found == role):
            return pid, argv
    raise Unhealthy(f"no {role or 'mailpipe'} process found")


def connect_host(argv: list[str]) -> str:
    host = option(argv, "--host", "--address") or "127.0.0.1"
    return "127.0.0.1" if host in ("", "0.0.0.0", "::", "[::]") else host.strip("[]")  # noqa: S104


def port(argv: list[str], role: str) -> int:
    return int(option(argv, "--port", "-p") or DEFAULT_PORTS[role])


def http_get(host: str, port_number: int, path: str) -> str:
    connection = http.client.HTTPConnection(host, port_number, timeout=TIMEOUT_SECONDS)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
    except OSError as exc:
        raise Unhealthy(f"GET http://{host}:{port_number}{path}: {exc}") from None
    finally:
        connection.close()
    if response.status != 200:
        raise Unhealthy(f"GET http://{host}:{port_number}{path}: {response.status}")
    return f"GET http://{host}:{port_number}{path}: 200"


def smtp_greeting(host: str, port_number: int) -> str:
    try:
        with socket.create_connection((host, port_number), timeout=TIMEOUT_SECONDS) as sock:
            greeting = sock.makefile("rb").readline(1000).decode(errors="replace").strip()
            sock.sendall(b"QUIT\r\n")
    except OSError as exc:
        raise Unhealthy(f"SMTP {host}:{port_number}: {exc}") from None
    if not greeting.startswith("220"):
        raise Unhealthy(f"SMTP {host}:{port_number} greeted with {greeting[:80]!r}, not 220")
    return f"SMTP {host}:{port_number}: {greeting[:80]}"


def worker_ping(argv: list[str]) -> str:
    app = option(argv, "-A", "--app") or "worker"
    node = worker_node_name(option(argv, "-n", "--hostname"))
    ping = [sys.executable, "-m", "celery", "-A", app, "inspect", "ping",
            "--destination", node, "--timeout", str(TIMEOUT_SECONDS)]  # fmt: skip
    try:
        result = subprocess.run(
            ping, capture_output=True, text=True, timeout=TIMEOUT_SECONDS + 30, check=False
        )
    except subprocess.TimeoutExpired:
        raise Unhealthy(f"celery inspect ping {node}: no answer in time") from None
    if result.returncode != 0 or "pong" not in result.stdout:
        said = (result.stderr or result.stdout).strip().splitlines()
        raise Unhealthy(f"celery inspect ping {node}: {said[-1] if said else result.returncode}")
    return f"celery inspect ping {node}: pong"


def worker_node_name(given: str | None) -> str:
    """The node name celery gives a worker started with ``-n given`` (default celery@%h)."""
    host = socket.gethostname()
    name = given or "celery@%h"
    name = name.replace("%h", host).replace("%n", host.split(".")[0])
    name = name.replace("%d", host.partition(".")[2])
    return name if "@" in name else f"celery@{name}"


def beat_schedule(pid: int, argv: list[str]) -> str:
    schedule = Path(option(argv, "-s", "--schedule") or "celerybeat-schedule")
    if not schedule.is_absolute():
        schedule = Path(os.readlink(f"/proc/{pid}/cwd")) / schedule
    # dbm may add a suffix (.db, or .dat/.dir/.bak): the newest of them counts.
    files = [schedule, *schedule.parent.glob(schedule.name + ".*")]
    if not any(path.exists() for path in files):
        # A process title may have cut the path short: beat keeps its schedule open.
        files = open_files(pid, str(schedule))
    times = [path.stat().st_mtime for path in files if path.exists()]
    if not times:
        raise Unhealthy(f"beat schedule {schedule} not written yet")
    age = time.time() - max(times)
    if age > BEAT_SCHEDULE_MAX_AGE_SECONDS:
        raise Unhealthy(f"beat schedule {schedule} last written {age:.0f} s ago")
    return f"beat schedule {schedule} written {age:.0f} s ago"


def open_files(pid: int, prefix: str) -> list[Path]:
    """The files ``pid`` holds open whose paths start with ``prefix``."""
    found = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith(prefix):
            found.append(Path(target))
    return found


def check(role: str, pid: int, argv: list[str]) -> str:
    if role == "api":
        return http_get(connect_host(argv), port(argv, role), "/healthz")
    if role == "flower":
        return http_get(connect_host(argv), port(argv, role), "/healthcheck")
    if role == "relay":
        return smtp_greeting(connect_host(argv), port(argv, role))
    if role == "worker":
        return worker_ping(argv)
    return beat_schedule(pid, argv)


def main(arguments: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("role", nargs="?", choices=ROLES, help="default: whichever runs here")
    parser.add_argument("--pid", type=int, help="check this process (default: find it)")
    args = parser.parse_args(arguments)
    try:
        if args.pid is not None:
            pid, argv = args.pid, command_line(args.pid)
            role = role_of(argv)
            if role is None or (args.role and role != args.role):
                raise Unhealthy(f"process {pid} runs {' '.join(argv)[:120]!r}, not {args.role}")
        else:
            pid, argv = find_process(args.role)
            role = role_of(argv)
        assert role is not None
        print(f"healthy: {role}: {check(role, pid, argv)}")
    except (Unhealthy, OSError, ValueError) as exc:
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
