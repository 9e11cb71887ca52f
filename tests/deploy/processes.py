"""The image's commands run here as compose starts them, with local stand-ins (no tests here)."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.deploy.compose_file import env_example, service
from tests.deploy.files import HEALTHCHECK, VENV_BIN
from tests.fakes.smtp_tls import TlsFiles
from tests.support import free_port


@dataclass
class Local:
    """What stands in for the compose file's services: a private Redis, SQLite, files."""

    directory: Path
    redis_url: str  # …/0
    database_url: str
    profiles: Path
    secret_key: str
    flower_auth: str
    api_key: str
    tls: TlsFiles

    def value(self, service_name: str, key: str, value: str) -> str:
        """The local stand-in of one variable of a service's environment."""
        base = self.redis_url.rsplit("/", 1)[0]
        local = {
            "MAILPIPE_BROKER_URL": f"{base}/0",
            "MAILPIPE_REDIS_URL": f"{base}/1",
            "MAILPIPE_DATABASE_URL": self.database_url,
            "MAILPIPE_PROFILES_FILE": str(self.profiles),
            "MAILPIPE_SECRET_KEY": self.secret_key,
            "MAILPIPE_API_KEYS": json.dumps([self.api_key_entry()]),
            "FLOWER_BASIC_AUTH": self.flower_auth,
            "MAILPIPE_RELAY_TLS_CERT_FILE": str(self.tls.cert_pem),
            "MAILPIPE_RELAY_TLS_KEY_FILE": str(self.tls.key_pem),
            "MAILPIPE_RELAY_TLS_PORT": str(free_port()),
        }
        if key in local:
            return local[key]
        names_a_place = "://" in value or value.startswith("/")
        assert not (key.startswith("MAILPIPE_") and names_a_place), (
            f"{service_name}: {key}={value}: a server or path this test has no stand-in for"
        )
        return value

    def api_key_entry(self) -> dict[str, object]:
        digest = hashlib.sha256(self.api_key.encode()).hexdigest()
        return {"name": "deploy-test", "sha256": digest, "profiles": [], "routes": []}

    def environment(self, name: str) -> dict[str, str]:
        """The service's environment as compose gives it, with local stand-ins."""
        spec = service(name)
        given = {key: str(value) for key, value in spec.get("environment", {}).items()}
        if spec.get("env_file"):
            given = env_example() | given
        env = {key: self.value(name, key, value) for key, value in given.items()}
        env |= {"PATH": f"{VENV_BIN}:{os.environ['PATH']}", "HOME": str(self.directory),
                "LANG": "C.UTF-8", "LOCAL_SMTP_PASSWORD": "not-used"}  # fmt: skip
        leftovers = [v for v in env.values() if "redis://redis" in v or "@postgres:" in v]
        assert not leftovers, f"{name}: compose's own hosts left in the environment"
        return env


def as_run_here(argv: list[str], tmp_path: Path) -> list[str]:
    """The command, listening on loopback and a free port, beat's schedule in tmp_path."""
    words = list(argv)
    for index, word in enumerate(words):
        if word in ("--host", "--port", "--schedule") and index + 1 < len(words):
            here = {"--host": "127.0.0.1", "--schedule": str(tmp_path / "celerybeat-schedule")}
            words[index + 1] = here.get(word) or str(free_port())
        elif word.startswith("--address="):
            words[index] = "--address=127.0.0.1"
        elif word.startswith("--port="):
            words[index] = f"--port={free_port()}"
    changed = {a for a, b in zip(argv, words, strict=True) if a != b}
    # Only where it listens and where beat writes: the rest runs exactly as the image runs it.
    allowed = {"0.0.0.0", "8025", "2525", "--address=0.0.0.0", "--port=5555"}  # noqa: S104
    assert changed <= allowed | {"/data/celerybeat-schedule"}, changed
    return words


class Running:
    """One of the image's processes, started as its compose service would start it."""

    def __init__(self, argv: list[str], env: dict[str, str], directory: Path) -> None:
        self.argv = argv
        self.log = directory / f"{argv[3] if argv[0] == 'celery' else argv[1]}.log"
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                argv, env=env, cwd=directory, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        self.env = env

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, pattern: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not re.search(pattern, self.text()):
            if self.process.poll() is not None or time.monotonic() > deadline:
                gone = self.process.poll()
                pytest.fail(f"{shlex.join(self.argv)}: no {pattern!r} "
                            f"({'exited ' + str(gone) if gone is not None else 'timed out'}):\n"
                            f"{self.text()[-3000:]}")  # fmt: skip
            time.sleep(0.1)

    def healthcheck(self, role: str) -> subprocess.CompletedProcess[str]:
        """deploy/healthcheck.py, as the image runs it, aimed at this process."""
        return subprocess.run(
            [sys.executable, str(HEALTHCHECK), role, "--pid", str(self.process.pid)],
            env=self.env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM, as docker stop, Kubernetes and systemd send it; it must exit by itself."""
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"{shlex.join(self.argv)} ignored SIGTERM:\n{self.text()[-3000:]}")

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)


def option_value(argv: list[str], name: str) -> str:
    for index, word in enumerate(argv):
        if word == name:
            return argv[index + 1]
        if word.startswith(name + "="):
            return word.split("=", 1)[1]
    raise AssertionError(f"no {name} in {argv}")


def http_get(port: int, path: str, headers: dict[str, str] | None = None) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def wait_until_serving(running: Running, port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if running.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"{shlex.join(running.argv)} does not listen on {port}:\n"
                            f"{running.text()[-3000:]}")  # fmt: skip
            time.sleep(0.1)
