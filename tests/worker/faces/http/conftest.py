"""``mailpipe serve`` for real: uvicorn on a free loopback port, in front of a pipeline."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import pytest
import uvicorn

from tests.pipeline import API_KEY, Pipeline
from tests.support import free_port
from tests.worker.faces.http.console_browser import browser  # noqa: F401 (a fixture)
from worker.faces.http.server import build_app
from worker.runtime import Runtime


@dataclass
class Api:
    url: str
    client: httpx.Client  # presents the tests' API key
    anonymous: httpx.Client  # presents none


class Served:
    """One uvicorn server in a thread; stopped the way uvicorn stops on SIGTERM."""

    def __init__(self, runtime: Runtime) -> None:
        self.port = free_port()
        config = uvicorn.Config(
            build_app(runtime), host="127.0.0.1", port=self.port, log_level="warning"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(20)


ServeFactory = Callable[[Runtime], str]


@pytest.fixture
def serve() -> Iterator[ServeFactory]:
    """Serve a runtime's app; returns its base URL."""
    servers: list[Served] = []

    def start(runtime: Runtime) -> str:
        served = Served(runtime)
        servers.append(served)
        return served.__enter__()

    yield start
    for served in servers:
        served.__exit__()


@pytest.fixture
def api(pipeline: Pipeline, serve: ServeFactory) -> Iterator[Api]:
    url = serve(pipeline.runtime)
    headers = {"Authorization": f"Bearer {API_KEY}"}
    with (
        httpx.Client(base_url=url, headers=headers, timeout=30) as client,
        httpx.Client(base_url=url, timeout=30) as anonymous,
    ):
        yield Api(url, client, anonymous)
