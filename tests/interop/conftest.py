"""Fixtures of the interop matrix: each real server once per module, a worker per test.

``upstream`` is parametrized over the servers at module scope, so pytest starts each server
once per module and runs the tests it has for that server before starting the next one; in
parallel, the module's tests all run in one test process (``SHARED_FIXTURE_FILES`` in
tests/conftest.py), so each server starts once per run. The sink behind them lives as long;
each test starts from an empty one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from tests.fakes.idp import FakeIdP
from tests.fakes.smtp_server import TlsFiles
from tests.interop.checks import Run
from tests.interop.mailpipe import (
    CLIENT_SECRET,
    PASSWORD,
    PASSWORD_USER,
    Mailpipe,
    profiles_file,
    start_mailpipe,
)
from tests.interop.matrix import SERVERS
from tests.interop.sink import Sink
from tests.interop.upstreams import Upstream, start_upstream
from tests.leaks import SecretRegistry


@pytest.fixture(scope="module")
def sink() -> Iterator[Sink]:
    server = Sink()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module", params=SERVERS)
def upstream(
    request: pytest.FixtureRequest, tls: TlsFiles, http_server: HTTPServer, sink: Sink
) -> Iterator[Upstream]:
    # Each test's FakeIdP answers introspection at this same URL of the session's server.
    server = start_upstream(
        request.param,
        tls=tls,
        introspection_url=http_server.url_for("/introspect"),
        passwords={PASSWORD_USER: PASSWORD},
        sink=("127.0.0.1", sink.port),
    )
    yield server
    server.stop()


@pytest.fixture
def profile_lines() -> str:
    """Lines for every profile's table; a test parametrizes it to change them all."""
    return ""


@pytest.fixture
def mailpipe(
    profile_lines: str,
    tmp_path: Path,
    upstream: Upstream,
    sink: Sink,
    idp: FakeIdP,
    redis_url: str,
    secret_key: str,
    tls: TlsFiles,
    secrets: SecretRegistry,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Mailpipe]:
    secrets.add(CLIENT_SECRET, PASSWORD, secret_key)
    monkeypatch.setenv("INTEROP_CLIENT_SECRET", CLIENT_SECRET)
    monkeypatch.setenv("INTEROP_PASSWORD", PASSWORD)
    profiles = profiles_file(
        tmp_path / "profiles.toml",
        port=upstream.port,
        ca_file=tls.ca_pem,
        idp=idp,
        extra_lines=profile_lines,
    )
    sink.clear()
    pipe = start_mailpipe(
        tmp_path, redis_server=redis_url, secret_key=secret_key, profiles=profiles
    )
    yield pipe
    pipe.stop()
    secrets.assert_absent(pipe.worker_logs())


@pytest.fixture
def run(
    mailpipe: Mailpipe,
    upstream: Upstream,
    sink: Sink,
    record_property: Callable[[str, object], None],
) -> Run:
    """The test's case of the matrix, from now: what the server accepted so far, the time."""
    return Run(mailpipe, upstream, sink, record_property)
