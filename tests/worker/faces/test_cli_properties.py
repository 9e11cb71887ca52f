"""Properties: `mailpipe send` with any options fails in one line, never with a traceback.

The command runs in-process (click's CliRunner) against a real profiles file
and SQLite database. Every example is made to fail before anything is stored
or published: the profile is unknown, an option is wrong, or the text is
exactly the profile's size limit, so that the message, checked field by field
first, is refused only at the end for its size.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.support import fresh_database
from worker.faces.cli import main
from worker.settings import get_settings

_PROPERTY = settings(
    max_examples=150,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
LIMIT = 1024  # the profile's max_message_bytes: the least a profile may set
_NASTY = [
    "\x00", "\n", "\r\n", "\x0b", "\x0c", "\x1b", "\x7f", "\x85", "\u2028", "\u2029", "\t",
    "\udcff", "=?utf-8?q?a=0D=0ABcc:_x@evil.test?=", ":", " ", '"', "'", "\\", "-", "--to",
    "--help", "é", "😀", "x" * 120,
]  # fmt: skip
_TEXT = st.lists(st.one_of(st.sampled_from(_NASTY), st.text(max_size=6)), max_size=5).map("".join)
_ADDRESSES = st.one_of(
    st.sampled_from(["oncall@example.com", "lead@example.com", "用户@例子.广告", "a@b"]), _TEXT
)
_HEADERS = st.one_of(
    st.sampled_from(["X-Incident-Id: INC-1", "X-A:b", "Bcc: x@evil.test", "no colon", ": v"]),
    st.builds(lambda name, value: f"{name}:{value}", _TEXT, _TEXT),
    st.builds(lambda value: f"X-Name: {value}", _TEXT),
)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cli")


@pytest.fixture(scope="module")
def cli_env(workdir: Path) -> Iterator[dict[str, str]]:
    """The settings `send` reads: a profiles file and a database; Redis is never reached."""
    profiles = workdir / "profiles.toml"
    profiles.write_text(
        "[profiles.relay]\n"
        'host = "smtp.example.net"\nfrom_email = "alerts@example.net"\n'
        'auth = "password"\npassword_env = "RELAY_PASSWORD"\n'
        f"max_message_bytes = {LIMIT}\n"
    )
    nowhere = "redis://127.0.0.1:1/0"  # nothing listens: a publish would fail loudly
    yield {
        "MAILPIPE_PROFILES_FILE": str(profiles),
        "MAILPIPE_DATABASE_URL": fresh_database("sqlite", workdir),
        "MAILPIPE_REDIS_URL": nowhere,
        "MAILPIPE_BROKER_URL": nowhere,
    }
    get_settings.cache_clear()  # the next reader sees the real environment again


def _padded(text: str) -> str:
    """``text`` made exactly the profile's limit in UTF-8 when it is shorter."""
    size = len(text.encode("utf-8", "surrogatepass"))
    return text + "x" * max(0, LIMIT - size)


_USAGE_ERRORS = [
    ["--priority", "urgent"], ["--text-file", "/nonexistent/body.txt"], ["--bogus"],
    ["--wait", "soon"], ["--to"],
]  # fmt: skip
_SAFE_TEXT = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), max_size=30)
_HOSTILE = ["profile", "to", "cc", "subject", "text", "text-file", "html-file", "header"]
_HOSTILE += ["idempotency-key", "usage"]


@st.composite
def _send_arguments(draw: st.DrawFn, workdir: Path) -> list[str]:
    """``send``'s arguments, one of them (or none) hostile, the rest good."""
    hostile = draw(st.sampled_from([None, *_HOSTILE]))
    event(f"hostile: {hostile}")
    profile = draw(st.sampled_from(["nope", "Relay"]) | _TEXT) if hostile == "profile" else "relay"
    args = ["send", "--profile", profile]
    to = ["oncall@example.com", "用户@例子.广告"]
    if hostile == "to":
        to = draw(st.lists(_ADDRESSES, min_size=1, max_size=3, unique=True))
    for address in to:
        args += ["--to", address]
    if hostile == "cc":
        args += ["--cc", draw(_ADDRESSES)]
    elif draw(st.booleans()):
        args += ["--cc", "lead@example.com"]
    subject = draw(_TEXT if hostile == "subject" else _SAFE_TEXT)
    args += ["--subject", subject]
    if hostile == "text-file":
        data = draw(
            st.binary(max_size=40) | _TEXT.map(lambda t: t.encode("utf-8", "surrogatepass"))
        )
        path = workdir / "body.txt"
        path.write_bytes(data + b"x" * max(0, LIMIT - len(data)))
        args += ["--text-file", str(path)]
    else:
        args += ["--text", _padded(draw(_TEXT if hostile == "text" else _SAFE_TEXT))]
    if hostile == "html-file":
        path = workdir / "body.html"
        path.write_bytes(draw(st.binary(max_size=20)))
        args += ["--html-file", str(path)]
    for header in draw(st.lists(_HEADERS, min_size=1, max_size=2)) if hostile == "header" else []:
        args += ["--header", header]
    if hostile == "idempotency-key":
        args += ["--idempotency-key", draw(_TEXT)]
    elif draw(st.booleans()):
        args += ["--idempotency-key", "am:db-01", "--header", "X-Incident-Id: INC-1"]
    if hostile == "usage":
        args += draw(st.sampled_from(_USAGE_ERRORS))
    return args


def _invoke(args: list[str], env: dict[str, str]) -> Any:
    get_settings.cache_clear()  # `send` reads the settings from the environment given here
    return CliRunner().invoke(main, args, env=env, prog_name="mailpipe")


@_PROPERTY
@given(data=st.data())
def test_send_with_any_options_fails_in_one_line_or_with_usage(
    workdir: Path, cli_env: dict[str, str], data: st.DataObject
) -> None:
    args = data.draw(_send_arguments(workdir))
    result = _invoke(args, cli_env)
    assert isinstance(result.exception, SystemExit), (args, result.exception, result.stderr)
    assert result.exit_code in (1, 2), (args, result.stdout, result.stderr)
    assert result.stdout == "", "no job id: nothing was queued"
    if result.exit_code == 1:
        lines = result.stderr.splitlines()
        assert len(lines) == 1, lines
        assert lines[0].startswith("mailpipe: error: "), lines
        event(f"error: {lines[0].removeprefix('mailpipe: error: ')[:28]}")
    else:
        (line,) = result.stderr.splitlines()
        assert line.startswith("mailpipe: error: "), line
        assert line.endswith("(`mailpipe send --help` shows the usage)"), line
        event("usage")


def test_a_text_file_that_is_not_utf8_is_one_error_line(
    workdir: Path, cli_env: dict[str, str]
) -> None:
    path = workdir / "latin1.txt"
    path.write_bytes("Störung".encode("latin-1"))
    for option in ("--text-file", "--html-file"):
        body = ["--text", "t"] if option == "--html-file" else []
        args = ["send", "--profile", "relay", "--to", "a@example.com", "--subject", "s"]
        result = _invoke([*args, *body, option, str(path)], cli_env)
        assert result.exit_code == 1
        assert result.stderr == f"mailpipe: error: {option}: '{path}' is not UTF-8 text\n"
        assert result.stdout == ""


def test_an_oversized_text_is_refused_naming_the_text(
    workdir: Path, cli_env: dict[str, str]
) -> None:
    args = ["send", "--profile", "relay", "--to", "a@example.com", "--subject", "s"]
    result = _invoke([*args, "--text", "x" * 50_000], cli_env)
    assert result.exit_code == 1
    assert result.stderr == (
        f"mailpipe: error: text: is 50000 bytes, the profile's message limit is {LIMIT}\n"
    )
