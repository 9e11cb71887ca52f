"""A token endpoint over TLS: a private CA through token_ca_file, an untrusted one fails once."""

from __future__ import annotations

import ssl
from collections.abc import Iterator

import httpx
import pytest
import trustme
from pydantic import SecretStr
from pytest_httpserver import HTTPServer

from providers import (
    ClientCredentialsGrant,
    PermanentProviderError,
    RetryPolicy,
    TokenEndpoint,
    TransientProviderError,
)
from providers.token_endpoint import redact_url
from tests.support import free_port


@pytest.fixture
def tls_idp(tmp_path: pytest.TempPathFactory) -> Iterator[tuple[HTTPServer, str]]:
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    server = HTTPServer(host="127.0.0.1", port=free_port(), ssl_context=context)
    server.expect_request("/token").respond_with_json(
        {"access_token": "at", "token_type": "Bearer", "expires_in": 3600}
    )
    server.start()
    ca_file = f"{tmp_path}/ca.pem"
    ca.cert_pem.write_to_path(ca_file)
    yield server, ca_file
    server.stop()


def grant(url: str, ca_file: str | None) -> ClientCredentialsGrant:
    return ClientCredentialsGrant(
        name="p", token_url=url, client_id="c", scope=None,
        client_secret=SecretStr("token-endpoint-tls-secret"), ca_file=ca_file,
    )  # fmt: skip


def test_a_private_ca_is_trusted_through_token_ca_file(tls_idp: tuple[HTTPServer, str]) -> None:
    server, ca_file = tls_idp
    with httpx.Client(timeout=5) as http:
        endpoint = TokenEndpoint(http)
        token = grant(server.url_for("/token"), ca_file).fetch(endpoint)
        endpoint.close()
    assert token.access_token == "at"


def test_an_untrusted_certificate_is_permanent_at_once_with_its_cause(
    tls_idp: tuple[HTTPServer, str],
) -> None:
    server, _ = tls_idp
    results: list[str] = []
    with httpx.Client(timeout=5) as http:
        endpoint = TokenEndpoint(http, on_result=lambda profile, result: results.append(result))
        with pytest.raises(PermanentProviderError) as caught:
            grant(server.url_for("/token"), None).fetch(endpoint)
    assert "not trusted" in str(caught.value)
    assert "token_ca_file" in str(caught.value)
    assert results == ["permanent"], "tried once, not for hours"


def test_urls_are_shown_without_credentials_or_query_values() -> None:
    url = "https://user:p4ss@login.example.com:8443/t/token?client_secret=abc&x=1#frag"
    assert redact_url(url) == "https://login.example.com:8443/t/token?client_secret=…&x=…"
    assert redact_url("http://[::1]:9/token") == "http://[::1]:9/token"


def test_an_unreachable_endpoint_names_its_url_without_secrets() -> None:
    port = free_port()
    with httpx.Client(timeout=2) as http:
        endpoint = TokenEndpoint(http, RetryPolicy(max_attempts=1))
        with pytest.raises(TransientProviderError) as caught:
            grant(f"http://admin:hunter2@127.0.0.1:{port}/token?key=k", None).fetch(endpoint)
    assert "hunter2" not in str(caught.value) and "key=k" not in str(caught.value)
    assert f"http://127.0.0.1:{port}/token?key=…" in str(caught.value)
