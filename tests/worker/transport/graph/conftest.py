"""A Graph profile named "p" against the fake Graph (HTTPS, test CA) and the fake token endpoint."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace

import pytest

from tests.fakes.graph import FakeGraph
from tests.worker.conftest import CredentialsFactory
from worker.credentials import Credentials
from worker.transport.graph import GraphTransport

# make_credentials takes the SMTP server's address; a Graph profile has none.
NO_SMTP_SERVER = SimpleNamespace(host=None, port=None, security=None)


@pytest.fixture
def graph_credentials(
    make_credentials: CredentialsFactory, graph: FakeGraph
) -> Iterator[CredentialsFactory]:
    def make(**fields: object) -> Credentials:
        values: dict[str, object] = {
            "provider": "microsoft365",
            "tenant": "contoso.onmicrosoft.com",
            "transport": "graph",
            "graph_url": graph.url,
            "scope": None,  # the preset's: https://graph.microsoft.com/.default
        }
        return make_credentials(NO_SMTP_SERVER, **(values | fields))

    return make


@pytest.fixture
def transports() -> Iterator[list[GraphTransport]]:
    made: list[GraphTransport] = []
    yield made
    for transport in made:
        transport.close()
