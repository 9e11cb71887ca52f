"""`make run` (deploy/quickstart.sh): the commands it ends with work exactly as printed.

It runs in a checkout of its own (the script and the Procfile, and this venv as
``.venv``), so that its ``.sandbox/`` and ``outbox/`` are the test's, with every
port it listens on moved to a free one: only where it listens changes.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from dotenv import dotenv_values

from tests.support import free_port

REPO = Path(__file__).resolve().parents[2]
# Where make run listens by default, as README shows it.
DEFAULT_PORTS = {"MAILPIPE_API_PORT": 8025, "MAILPIPE_RELAY_PORT": 2525}
LAST_COMMAND = re.compile(r"^  \S+/mailpipe send --profile sandbox-oncall ")
JOB_ID = re.compile(r"\b[0-9a-f]{32}\b")


@dataclass(frozen=True)
class Quickstart:
    root: Path
    output: list[str]  # every line it printed, up to its last command
    env: dict[str, str]
    ports: dict[str, int]

    @property
    def commands(self) -> list[str]:
        """The lines it ends with: each a command, indented by two spaces."""
        block = self.output[self.output.index("") + 1 :]
        while "" in block:
            block = block[block.index("") + 1 :]
        assert all(line.startswith("  ") for line in block), block
        return [line[2:] for line in block]

    def shell(self, command: str) -> list[str]:
        """``command`` in a shell that ran the first printed line, as in another terminal."""
        return ["bash", "-c", f"{self.commands[0]}\n{command}"]


def _reader(stream: Iterator[str], lines: queue.Queue[str | None]) -> None:
    for line in stream:
        lines.put(line.rstrip("\n"))
    lines.put(None)


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Quickstart]:
    root = tmp_path_factory.mktemp("checkout")
    (root / "deploy").mkdir()
    shutil.copy2(REPO / "deploy" / "quickstart.sh", root / "deploy" / "quickstart.sh")
    flower = free_port()
    procfile = (REPO / "Procfile").read_text()
    assert procfile.count("--port=5555") == 1
    (root / "Procfile").write_text(procfile.replace("--port=5555", f"--port={flower}"))
    (root / ".venv").symlink_to(Path(sys.prefix))
    ports = {name: free_port() for name in ("SANDBOX_REDIS_PORT", "SANDBOX_TOKEN_PORT",
                                            "SANDBOX_SMTP_PORT", *DEFAULT_PORTS)}  # fmt: skip
    # Nothing of this machine's own mailpipe settings: only what the sandbox writes.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAILPIPE_", "FLOWER_"))}
    env.pop("VENV", None)
    env |= {name: str(port) for name, port in ports.items()}
    process = subprocess.Popen(
        ["deploy/quickstart.sh"], cwd=root, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    assert process.stdout is not None
    lines: queue.Queue[str | None] = queue.Queue()
    reader = threading.Thread(target=_reader, args=(process.stdout, lines), daemon=True)
    reader.start()
    output: list[str] = []
    try:
        deadline = time.monotonic() + 300  # a hang guard only: it takes some seconds
        while not (output and LAST_COMMAND.match(output[-1])):
            line = lines.get(timeout=max(1.0, deadline - time.monotonic()))
            assert line is not None, "make run ended early:\n" + "\n".join(output)
            output.append(line)
        yield Quickstart(root, output, env, ports)
    finally:
        process.send_signal(signal.SIGTERM)  # its trap stops everything it started
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
        reader.join(10)  # to the end of its output
        process.stdout.close()


def test_make_run_says_it_stays_in_the_foreground_serving_the_intake_and_the_relay(
    quickstart: Quickstart,
) -> None:
    text = "\n".join(quickstart.output)
    api, relay = quickstart.ports["MAILPIPE_API_PORT"], quickstart.ports["MAILPIPE_RELAY_PORT"]
    assert "make run stays in the foreground" in text
    assert f"the HTTP intake\n({api}) and the SMTP relay ({relay}) until Ctrl-C" in text
    assert "no other `mailpipe serve` is needed" in text
    status = quickstart.output.index("") + 1
    assert re.fullmatch(r"job [0-9a-f]{32}: delivered \(profile sandbox, priority high\)",
                        quickstart.output[status])  # fmt: skip


def test_the_sandbox_env_file_is_for_a_shell_and_for_dotenv(quickstart: Quickstart) -> None:
    env_file = quickstart.root / ".sandbox" / "env"
    assert env_file.stat().st_mode & 0o777 == 0o600
    assert quickstart.commands[0] == ". .sandbox/env"
    exported = subprocess.run(
        ["sh", "-c", ". .sandbox/env && env -0"], cwd=quickstart.root, env=quickstart.env,
        capture_output=True, text=True, timeout=30, check=True,
    ).stdout  # fmt: skip
    in_shell = dict(item.split("=", 1) for item in exported.split("\0") if "=" in item)
    read = dotenv_values(env_file)
    assert {"MAILPIPE_DATABASE_URL", "MAILPIPE_SECRET_KEY", "FLOWER_BASIC_AUTH"} <= set(read)
    assert {name: in_shell.get(name) for name in read} == read


def test_every_command_make_run_ends_with_works_as_printed(quickstart: Quickstart) -> None:
    ran = [quickstart.commands[0]]  # sourced before each of the others, as a shell would
    for command in quickstart.commands[1:]:
        if " oauth authorize " in command:
            _sign_in(quickstart, command)
        else:
            result = subprocess.run(
                quickstart.shell(command), cwd=quickstart.root, env=quickstart.env,
                capture_output=True, text=True, timeout=120, check=False,
            )  # fmt: skip
            assert result.returncode == 0, (command, result.stdout, result.stderr)
            _check_output(command, result.stdout)
        ran.append(command)
    assert ran == quickstart.commands
    assert len(ran) == 5, "the list above covers each kind of command it prints"


def _check_output(command: str, stdout: str) -> None:
    if " status " in command:
        assert re.match(r"job [0-9a-f]{32}: delivered ", stdout), stdout
    elif command.startswith("curl "):
        assert re.fullmatch(r'\{"id":"[0-9a-f]{32}","status_url":"[^"]+"\}', stdout), stdout
    elif " send " in command:
        assert stdout.splitlines()[-1].startswith("delivered: "), stdout
    else:
        pytest.fail(f"make run prints a command this test does not know: {command}")


def _sign_in(quickstart: Quickstart, command: str) -> None:
    """What a person does: open the printed URL in a browser on this machine."""
    process = subprocess.Popen(
        quickstart.shell(command), cwd=quickstart.root, env=quickstart.env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    assert process.stdout is not None
    seen = []
    try:
        for line in process.stdout:
            seen.append(line)
            if url := re.search(r"http://127\.0\.0\.1:\d+/authorize\?\S+", line):
                page = httpx.get(url[0], follow_redirects=True, timeout=30)
                assert "mailpipe received the sign-in" in page.text
                break
        rest, _ = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=10)
    assert process.returncode == 0, "".join(seen) + rest
    assert "signed in: the refresh token of profile sandbox-oncall is stored" in rest


def test_readme_shows_the_commands_make_run_prints(quickstart: Quickstart) -> None:
    readme = (REPO / "README.md").read_text()
    start = readme.index("## Quickstart")
    lines = readme[start : readme.index("\n## ", start)].splitlines()
    first = lines.index("  . .sandbox/env")  # as make run's output ends, in README
    shown = []
    for line in lines[first:]:
        if not line.startswith("  "):
            break
        shown.append(JOB_ID.sub("JOB_ID", line[2:]))
    assert [_as_readme(line, quickstart) for line in quickstart.commands] == shown


def _as_readme(command: str, quickstart: Quickstart) -> str:
    """The printed command with make run's default ports and a placeholder job id."""
    for name, default in DEFAULT_PORTS.items():
        command = command.replace(f":{quickstart.ports[name]}/", f":{default}/")
    return JOB_ID.sub("JOB_ID", command)
