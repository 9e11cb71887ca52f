"""Shared by the deploy tests (no tests here): the files' paths, mailpipe's services, the tools."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).parents[2]
DEPLOY = REPO / "deploy"
DOCKERFILE = DEPLOY / "Dockerfile"
HEALTHCHECK = DEPLOY / "healthcheck.py"
COMPOSE = DEPLOY / "docker-compose.yml"
VENV_BIN = Path(sys.executable).parent

LONG_RUNNING = ("worker", "beat", "flower", "api", "relay")
MAILPIPE_SERVICES = ("db-upgrade", *LONG_RUNNING)
# The hard task time limit (worker/settings.py) is 300 s; a worker stopped with SIGTERM must be
# given that, and a little more, before it is killed.
GRACE_SECONDS = 330
PLACEHOLDER = "CHANGE_ME"
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|_KEY$|_KEYS$|AUTH")


def tool(name: str, installed_by: str) -> str:
    """A tool's path, from the venv first; a missing tool fails the test, it never skips it."""
    in_venv = VENV_BIN / name
    found = str(in_venv) if in_venv.exists() else shutil.which(name)
    if found is None:
        pytest.fail(f"{name} not found: run `make test`, which installs it ({installed_by})")
    return found


def run(*argv: str, stdin: str | None = None, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(argv), input=stdin, cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )
