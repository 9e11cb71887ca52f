"""The documentation: the site builds without a warning, its references cover the code.

What is checked of the commands in the docs is that they parse: every
``mailpipe …`` command line in a shell block or a code span of README.md and
docs/ names commands and options that the click CLI has, with no argument too
many, so that renaming a command or an option breaks this test. They are not
run end to end here (the quickstart's own commands are: test_quickstart.py).
"""

from __future__ import annotations

import fcntl
import importlib.util
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import click
import pytest
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from worker.faces.cli import main
from worker.settings import Settings

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
SHELL_BLOCK = re.compile(r"^```(?:sh|bash|shell|console)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
ANY_BLOCK = re.compile(r"^```.*?^```$", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"`((?:\S*/)?mailpipe [^`]+)`")
MARKDOWN_LINK = re.compile(r"\]\(([^)\s]+)\)")


@dataclass(frozen=True)
class Site:
    root: Path
    log: str  # what mkdocs printed


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    """The site, built once per run: the xdist workers share it (and the hook's writes)."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # this run's folder, shared by its workers
    root, log = base / "docs-site", base / "docs-site.log"
    with (base / "docs-site.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not log.exists():
            log.write_text(_build(root))
    return Site(root, log.read_text())


def _build(root: Path) -> str:
    env = os.environ | {"NO_MKDOCS_2_WARNING": "1"}  # Material's notice, not about our docs
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(root)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    log = result.stdout + result.stderr
    assert result.returncode == 0, log
    return log


def _hooks() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_hooks", DOCS / "hooks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_site_builds_strict_without_a_warning(site: Site) -> None:
    problems = [line for line in site.log.splitlines() if re.match(r"(WARNING|ERROR)\b", line)]
    assert problems == []
    assert "Documentation built" in site.log
    assert (site.root / "profiles" / "microsoft365" / "index.html").is_file()


def test_a_broken_link_fails_the_build(tmp_path: Path) -> None:
    """strict is what makes the build a check: a page linking to no page fails it."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "index.md").write_text("# Home\n\n[gone](gone.md)\n")
    (tmp_path / "mkdocs.yml").write_text((REPO / "mkdocs.yml").read_text().split("\nhooks:")[0])
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--site-dir", str(tmp_path / "site")],
        cwd=tmp_path, env=os.environ | {"NO_MKDOCS_2_WARNING": "1"},
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "gone.md" in result.stderr


def _api_routes(routes: Sequence[BaseRoute]) -> Iterator[APIRoute]:
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        # Newer FastAPI keeps an included router whole, behind a route of its own.
        if (included := getattr(route, "original_router", None)) is not None:
            yield from _api_routes(included.routes)


def test_the_http_reference_lists_every_route_of_the_intake(site: Site) -> None:
    hooks = _hooks()
    app = hooks.intake_app()
    routes = [r for r in _api_routes(app.routes) if r.include_in_schema]
    operations = {(method, route.path) for route in routes for method in route.methods}
    assert len(operations) >= 10, operations
    page = (DOCS / "reference" / "http.md").read_text()
    built = (site.root / "reference" / "http" / "index.html").read_text()
    for method, path in operations:
        assert f"## `{method} {path}`" in page
        assert f"<code>{method} {path}</code>" in built
    documented = set(re.findall(r"^## `([A-Z]+) (\S+)`$", page, re.MULTILINE))
    assert documented == operations
    assert (site.root / "reference" / "openapi.json").read_text() == (
        DOCS / "reference" / "openapi.json"
    ).read_text()


def _commands(group: click.Group, path: str) -> Iterator[tuple[str, click.Command]]:
    for name, command in group.commands.items():
        yield f"{path} {name}", command
        if isinstance(command, click.Group):
            yield from _commands(command, f"{path} {name}")


def test_the_cli_reference_shows_every_command_and_option(site: Site) -> None:
    built = (site.root / "reference" / "cli" / "index.html").read_text()
    commands = list(_commands(main, "mailpipe"))
    assert len(commands) >= 20
    for path, command in commands:
        assert f">{path}<" in built, path
        for param in command.params:
            if isinstance(param, click.Option):
                assert all(opt in built for opt in param.opts), (path, param.opts)


# Every `mailpipe …` command line of the docs.


def check_command_line(argv: list[str]) -> None:
    """Fails unless ``mailpipe ARGV`` names existing commands and options.

    Only click's parser runs (no callback, no type conversion, no required check), so
    placeholders such as JOB_ID or a --text-file that does not exist here pass.
    """
    command: click.Command = main
    ctx: click.Context | None = None
    name = "mailpipe"
    while True:
        ctx = click.Context(command, info_name=name, parent=ctx)
        try:
            _, rest, _ = command.make_parser(ctx).parse_args(argv)
        except click.UsageError as exc:
            raise AssertionError(f"{ctx.command_path}: {exc.format_message()}") from None
        if not isinstance(command, click.Group):
            assert not rest, f"{ctx.command_path}: unexpected argument(s) {rest}"
            return
        if not rest:
            assert command.invoke_without_command, f"{ctx.command_path}: no subcommand"
            return
        sub = command.get_command(ctx, rest[0])
        assert sub is not None, f"{ctx.command_path}: no command {rest[0]!r}"
        name, command, argv = rest[0], sub, rest[1:]


def _simple_commands(line: str) -> Iterator[list[str]]:
    """The words of each simple command of a shell line (split at | ; & ( ))."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    words: list[str] = []
    for token in lexer:
        if token and set(token) <= set("|;&()"):
            yield words
            words = []
        else:
            words.append(token)
    yield words


def _as_mailpipe(words: list[str]) -> list[str] | None:
    """The arguments after ``mailpipe`` (a synopsis' [optional] parts included), else None."""
    while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
        words = words[1:]  # VAR=value before the command
    if not words or words[0].rsplit("/", 1)[-1] != "mailpipe":
        return None
    return [w.strip("[]") for w in words[1:] if w.strip("[]") not in ("", "...", "…")]


def _quotes_closed(line: str) -> bool:
    try:
        list(_simple_commands(line))
    except ValueError:  # shlex: "No closing quotation"
        return False
    return True


def documented_command_lines(text: str) -> Iterator[str]:
    """Each shell line (continuations joined) and code span that may hold a mailpipe command."""
    for block in SHELL_BLOCK.findall(text):
        pending = ""
        for line in block.replace("\\\n", " ").splitlines():
            pending += line
            if _quotes_closed(pending):
                yield pending
                pending = ""
            else:
                pending += "\n"  # a quoted string goes on on the next line
        assert not pending, f"unclosed quote in a shell block: {pending!r}"
    for span in CODE_SPAN.findall(ANY_BLOCK.sub("", text)):
        yield span.replace("\\", "")  # a span inside an escaped span: `… \`mailpipe …\``


def _pages() -> list[Path]:
    return [REPO / "README.md", *sorted(DOCS.rglob("*.md"))]


def test_every_mailpipe_command_in_the_docs_parses_against_the_cli() -> None:
    checked = []
    for page in _pages():
        for line in documented_command_lines(page.read_text()):
            for words in _simple_commands(line):
                argv = _as_mailpipe(words)
                if argv is not None:
                    try:
                        check_command_line(argv)
                    except AssertionError as exc:
                        pytest.fail(f"{page.relative_to(REPO)}: {line.strip()!r}: {exc}")
                    checked.append(argv)
    assert len(checked) >= 40, checked  # the extraction finds what the docs show
    documented = {" ".join(argv[:2]) for argv in checked}
    assert {
        "send --profile",
        "profiles check",
        "oauth authorize",
        "relay hash-password",
    } <= documented


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ("mailpipe send --profil m365 --to a@example.com", "No such option"),
        ("mailpipe profile list", "no command 'profile'"),
        ("mailpipe profiles chek m365", "no command 'chek'"),
        ("mailpipe status JOB_ID extra", "unexpected argument"),
        ("mailpipe tokens", "no subcommand"),
        ("mailpipe oauth authorize m365 --device --browser", "No such option"),
    ],
)
def test_a_renamed_command_or_option_fails_the_check(line: str, error: str) -> None:
    (words,) = _simple_commands(line)
    argv = _as_mailpipe(words)
    assert argv is not None
    with pytest.raises(AssertionError, match=error):
        check_command_line(argv)


def test_commands_are_found_in_pipes_substitutions_and_synopses() -> None:
    text = (
        "```sh\n"
        "echo -n 'pw' | mailpipe relay hash-password   # → $argon2id$…\n"
        "export MAILPIPE_SECRET_KEY=$(mailpipe secret-key)\n"
        "MAILPIPE_X=1 .venv/bin/mailpipe send --profile p --to a@example.com \\\n"
        "    --subject s --text t --wait 60\n"
        "mailpipe status JOB_ID [--json]\n"
        "```\n"
        "Run `mailpipe profiles check NAME --send-to ADDR` first.\n"
    )
    found = [
        argv
        for line in documented_command_lines(text)
        for words in _simple_commands(line)
        if (argv := _as_mailpipe(words)) is not None
    ]
    assert found == [
        ["relay", "hash-password"],
        ["secret-key"],
        ["send", "--profile", "p", "--to", "a@example.com", "--subject", "s", "--text", "t",
         "--wait", "60"],
        ["status", "JOB_ID", "--json"],
        ["profiles", "check", "NAME", "--send-to", "ADDR"],
    ]  # fmt: skip


# README: its links into docs/ resolve, and it draws the same picture as the home page.


def _github_anchor(heading: str) -> str:
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "").lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = ANY_BLOCK.sub("", page.read_text())
    return {_github_anchor(h) for h in re.findall(r"^#{1,6} (.+)$", text, re.MULTILINE)}


def test_readme_links_resolve() -> None:
    readme = REPO / "README.md"
    links = MARKDOWN_LINK.findall(ANY_BLOCK.sub("", readme.read_text()))
    local = [link for link in links if not re.match(r"[a-z]+:", link)]
    assert sum(link.startswith("docs/") for link in local) >= 15, local
    for link in local:
        target, _, anchor = link.partition("#")
        path = REPO / target if target else readme
        assert path.is_file(), f"README links to {link}: no such file"
        if anchor:
            assert anchor in _anchors(path), f"README links to {link}: no such heading"


def test_readme_keeps_the_troubleshooting_heading_the_alert_runbooks_link_to() -> None:
    assert "troubleshooting" in _anchors(REPO / "README.md")


def _picture(page: Path) -> str:
    text = page.read_text()
    section = text[text.index("## How it fits together") :]
    return section[section.index("```\n") : section.index("\n```\n")]


def test_readme_and_the_home_page_draw_the_same_picture() -> None:
    assert _picture(REPO / "README.md") == _picture(DOCS / "index.md")


# Names of settings in the docs are settings.

# Environment variables the docs name that are not settings: make run's ports (read by
# deploy/quickstart.sh) and a shell variable of an example.
NOT_SETTINGS = {"MAILPIPE_API_PORT", "MAILPIPE_RELAY_PORT", "MAILPIPE_KEY"}


def test_every_mailpipe_variable_in_the_docs_is_a_setting() -> None:
    settings = {f"MAILPIPE_{name.upper()}" for name in Settings.model_fields}
    named = {
        (name, str(page.relative_to(REPO)))
        for page in _pages()
        for name in re.findall(r"\bMAILPIPE_[A-Z0-9_]*[A-Z0-9]", page.read_text())
    }
    assert len(named) >= 30
    assert {(name, page) for name, page in named if name not in settings | NOT_SETTINGS} == set()
