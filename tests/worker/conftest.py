"""Profiles that point at the test SMTP server and token endpoint, as Credentials."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import redis
from cryptography.fernet import MultiFernet

from providers import RetryPolicy
from tests.fakes.idp import FakeIdP
from tests.fakes.smtp_server import FakeSmtpServer, TlsFiles
from tests.support import fresh_database
from worker.credentials import Credentials, load_profiles
from worker.credentials.tokens import TokenCache
from worker.store import DatabaseRefreshTokenStore, Store

CredentialsFactory = Callable[..., Credentials]


@pytest.fixture
def make_credentials(
    tmp_path: Path, idp: FakeIdP, tls: TlsFiles, redis_url: str, fernet: MultiFernet
) -> Iterator[CredentialsFactory]:
    """Credentials for one profile named "p" pointing at ``server``; ``fields`` add or override."""
    store = Store(fresh_database("sqlite", tmp_path))
    made: list[Credentials] = []
    http = httpx.Client(timeout=5.0)

    def make(server: FakeSmtpServer, **fields: object) -> Credentials:
        values: dict[str, object] = {
            "host": server.host,
            "port": server.port,
            "security": server.security,
            "ca_file": str(tls.ca_pem),
            "from_email": "alerts@example.test",
            "from_name": "Example Alerts",
            "auth": "oauth",
            "grant": "client_credentials",
            "token_url": idp.url,
            "allow_insecure_token_url": True,
            "scope": "smtp.send",
            "client_id": "mailpipe",
            "client_secret": "smtp-test-client-secret",
        }
        values.update(fields)
        if values["auth"] == "password":
            for key in ("grant", "token_url", "allow_insecure_token_url", "scope", "client_id",
                        "client_secret"):  # fmt: skip
                values.pop(key, None)
        idp.secrets.add("smtp-test-client-secret", str(values.get("password", "")))
        lines = ["[profiles.p]"] + [f"{k} = {_toml(v)}" for k, v in values.items() if v is not None]
        path = tmp_path / f"profiles-{len(made)}.toml"
        path.write_text("\n".join(lines) + "\n")
        client = redis.Redis.from_url(redis_url)
        cache = TokenCache(client, fernet, http, policy=RetryPolicy(max_attempts=1))
        credentials = Credentials(
            load_profiles(path, {}), cache, DatabaseRefreshTokenStore(store, fernet)
        )
        made.append(credentials)
        return credentials

    yield make
    for credentials in made:
        credentials.cache.close()
    http.close()
    store.dispose()  # its pooled SQLite connection, else left to the garbage collector


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
