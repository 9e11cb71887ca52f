"""The systemd units and the Procfile: systemd-analyze, restarts, grace, hardening, commands."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.deploy.compose_file import compose_command
from tests.deploy.files import (
    DEPLOY,
    GRACE_SECONDS,
    MAILPIPE_SERVICES,
    REPO,
    VENV_BIN,
    run,
    tool,
)

SYSTEMD = DEPLOY / "systemd"
PROCFILE = REPO / "Procfile"


def unit(name: str) -> dict[str, dict[str, list[str]]]:
    """A unit file's sections, each key with every value it is given (systemd allows repeats)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for number, line in enumerate((SYSTEMD / name).read_text().splitlines(), 1):
        if not line.strip() or line.startswith(("#", ";")):
            continue
        assert not line.endswith("\\"), f"{name}:{number}: keep each setting on one line"
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        assert current is not None and "=" in line, f"{name}:{number}: {line}"
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def exec_start(name: str) -> list[str]:
    (command,) = unit(name)["Service"]["ExecStart"]
    return shlex.split(command)


UNITS = [f"mailpipe-{name}.service" for name in MAILPIPE_SERVICES]


def test_systemd_analyze_verifies_the_units(tmp_path: Path) -> None:
    analyze = tool("systemd-analyze", "the Debian package systemd")
    # A root of its own: the units where they are installed, the executables they name (the
    # venv's own scripts at the path of the VM's venv) and the system's units they refer to.
    root = tmp_path / "root"
    shutil.copytree(SYSTEMD, root / "etc/systemd/system")
    system_units = next(p for p in (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system"))
                        if (p / "multi-user.target").exists())  # fmt: skip
    shutil.copytree(system_units, root / "usr/lib/systemd/system", symlinks=True)
    for unit_name in UNITS:
        for key in ("ExecStart", "ExecStartPre"):
            for command in unit(unit_name)["Service"].get(key, []):
                executable = Path(shlex.split(command)[0])
                (root / executable.relative_to("/")).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(shutil.which(executable.name, path=f"{VENV_BIN}:/usr/bin:/bin")
                            or pytest.fail(f"no {executable.name} to stand in"),
                            root / executable.relative_to("/"))  # fmt: skip
    result = run(analyze, "verify", f"--root={root}", "mailpipe.target", *UNITS, cwd=tmp_path)
    # It warns about unknown keys or bad values but still exits 0: any output is a failure.
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), (
        result.stdout + result.stderr
    )


def test_systemd_analyze_reports_what_it_should(tmp_path: Path) -> None:
    analyze = tool("systemd-analyze", "the Debian package systemd")
    broken = tmp_path / "mailpipe-api.service"
    broken.write_text((SYSTEMD / "mailpipe-api.service").read_text() + "TimeoutStopSecs=30\n")
    result = run(analyze, "verify", str(broken), cwd=tmp_path)
    assert "Unknown key" in result.stderr and "TimeoutStopSecs" in result.stderr


def test_the_units_restart_their_processes_and_stop_them_gracefully() -> None:
    hardening = {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "PrivateTmp": "yes",
        "ProtectHome": "yes",
        "PrivateDevices": "yes",
        "RestrictSUIDSGID": "yes",
    }
    for name in UNITS:
        service_section = unit(name)["Service"]
        settings = {key: values[-1] for key, values in service_section.items()}
        assert settings["User"] == "mailpipe", name
        assert settings["EnvironmentFile"] == "/etc/mailpipe/env", name
        assert service_section["ReadWritePaths"] == ["/var/lib/mailpipe"], name
        for key, value in hardening.items():
            assert settings.get(key) == value, f"{name}: {key}"
        if name == "mailpipe-db-upgrade.service":
            assert settings["Type"] == "oneshot"
            continue
        assert settings["Restart"] == "always", name
        assert settings["KillSignal"] == "SIGTERM", name
        assert settings["KillMode"] == "mixed", f"{name}: SIGTERM to the main process only"
        assert unit(name)["Install"]["WantedBy"] == ["mailpipe.target"]
        assert "mailpipe-db-upgrade.service" in unit(name)["Unit"]["After"][0].split()
    worker = unit("mailpipe-worker.service")["Service"]
    assert float(worker["TimeoutStopSec"][-1]) >= GRACE_SECONDS
    assert "beat" in unit("mailpipe-beat.service")["Unit"]["Description"][0]


def test_the_units_run_the_compose_files_commands() -> None:
    def normal(argv: list[str]) -> list[str]:
        # What a VM sets otherwise: where beat keeps its schedule, Flower only on loopback,
        # the worker's concurrency from /etc/mailpipe/env.
        words = [Path(argv[0]).name, *argv[1:]]
        replace = {"--schedule": "SCHEDULE", "--concurrency": "N"}
        for index, word in enumerate(words[:-1]):
            if word in replace:
                words[index + 1] = replace[word]
        return [re.sub(r"^--address=.*", "--address=HOST", word) for word in words]

    for name in MAILPIPE_SERVICES:
        assert normal(exec_start(f"mailpipe-{name}.service")) == normal(compose_command(name))
    flower = unit("mailpipe-flower.service")["Service"]
    assert "--address=127.0.0.1" in exec_start("mailpipe-flower.service")
    assert "basic-auth" not in flower["ExecStart"][0]
    # Its check of FLOWER_BASIC_AUTH: $$ so that sh expands it, not systemd into argv.
    assert "$${FLOWER_BASIC_AUTH:?" in flower["ExecStartPre"][0]


# -- the Procfile -----------------------------------------------------------------------------


def procfile() -> dict[str, str]:
    lines = (line.partition(": ") for line in PROCFILE.read_text().splitlines() if line.strip())
    return {name: command for name, _, command in lines}


def test_the_procfile_keeps_flowers_password_off_the_command_line(tmp_path: Path) -> None:
    line = procfile()["flower"]
    assert "basic-auth" not in line
    env = {k: v for k, v in os.environ.items() if k != "FLOWER_BASIC_AUTH"}
    result = subprocess.run(["sh", "-c", line], env=env, cwd=tmp_path, capture_output=True,
                            text=True, timeout=30, check=False)  # fmt: skip
    assert result.returncode != 0
    assert "set FLOWER_BASIC_AUTH=user:password" in result.stderr
    # Otherwise it execs Flower as the compose file runs it, on loopback.
    inner = shlex.split(shlex.split(line)[2].split(";", 1)[1])
    assert inner[0] == "exec"
    on_loopback = [w.replace("0.0.0.0", "127.0.0.1") for w in compose_command("flower")]  # noqa: S104
    assert inner[1:] == on_loopback
