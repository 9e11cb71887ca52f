"""Client credentials: the exact form Microsoft expects, with a secret or a certificate."""

from __future__ import annotations

import base64
import hashlib
import re
import time
from collections.abc import Iterator

import httpx
import jwt
import pytest
from pydantic import SecretStr

from providers import (
    ClientCertificate,
    ClientCredentialsGrant,
    CredentialsConfigError,
    TokenEndpoint,
)
from providers.assertions import CLIENT_ASSERTION_TYPE
from tests.fakes.idp import FakeIdP
from tests.keys import certificate_der, certificate_pem, private_pem, rsa_key
from tests.leaks import SecretRegistry

CLIENT_ID = "11111111-1111-1111-1111-111111111111"
SCOPE = "https://outlook.office365.com/.default"
SECRET = "Zq8Q~client-secret-with:colon+plus%"


@pytest.fixture
def endpoint() -> Iterator[TokenEndpoint]:
    with httpx.Client(timeout=2.0) as http:
        yield TokenEndpoint(http)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_secret_goes_in_the_form_body(idp: FakeIdP, endpoint: TokenEndpoint) -> None:
    grant = ClientCredentialsGrant(
        name="m365",
        token_url=idp.url,
        client_id=CLIENT_ID,
        scope=SCOPE,
        client_secret=SecretStr(SECRET),
    )
    grant.fetch(endpoint)
    assert idp.requests[0].form == {
        "grant_type": "client_credentials",
        "client_id": CLIENT_ID,
        "scope": SCOPE,
        "client_secret": SECRET,
    }
    assert "Authorization" not in idp.requests[0].headers


def test_secret_in_http_basic_is_form_encoded_first(idp: FakeIdP, endpoint: TokenEndpoint) -> None:
    grant = ClientCredentialsGrant(
        name="generic",
        token_url=idp.url,
        client_id=CLIENT_ID,
        scope="smtp.send",
        client_secret=SecretStr(SECRET),
        client_auth="basic",
    )
    grant.fetch(endpoint)
    seen = idp.requests[0]
    assert "client_secret" not in seen.form
    expected = base64.b64encode(
        f"{CLIENT_ID}:Zq8Q~client-secret-with%3Acolon%2Bplus%25".encode()
    ).decode()
    assert seen.headers["Authorization"] == f"Basic {expected}"


@pytest.mark.parametrize(
    ("algorithm", "thumbprint_header", "digest"),
    [("PS256", "x5t#S256", hashlib.sha256), ("RS256", "x5t", hashlib.sha1)],
)
def test_certificate_assertion_is_signed_with_the_right_claims(
    idp: FakeIdP,
    endpoint: TokenEndpoint,
    algorithm: str,
    thumbprint_header: str,
    digest: type,
    secrets: SecretRegistry,
) -> None:
    secrets.add(certificate_pem())
    grant = ClientCredentialsGrant(
        name="m365-cert",
        token_url=idp.url,
        client_id=CLIENT_ID,
        scope=SCOPE,
        certificate=ClientCertificate.from_pem(certificate_pem()),
        assertion_algorithm=algorithm,  # type: ignore[arg-type]
    )
    before = int(time.time())
    grant.fetch(endpoint)
    grant.fetch(endpoint)
    forms = [r.form for r in idp.requests]
    assert forms[0]["client_assertion_type"] == CLIENT_ASSERTION_TYPE
    assert "client_secret" not in forms[0]
    assertion = forms[0]["client_assertion"]
    header = jwt.get_unverified_header(assertion)
    assert header["alg"] == algorithm
    assert header[thumbprint_header] == b64url(digest(certificate_der()).digest())
    claims = jwt.decode(assertion, rsa_key().public_key(), algorithms=[algorithm], audience=idp.url)
    assert claims["iss"] == claims["sub"] == CLIENT_ID
    assert before <= claims["iat"] <= before + 2
    assert 300 <= claims["exp"] - claims["iat"] <= 600
    second = jwt.decode(
        forms[1]["client_assertion"],
        rsa_key().public_key(),
        algorithms=[algorithm],
        audience=idp.url,
    )
    assert claims["jti"] != second["jti"]


def test_certificate_file_without_a_certificate_is_refused() -> None:
    with pytest.raises(CredentialsConfigError, match="no PEM certificate") as caught:
        ClientCertificate.from_pem(private_pem(rsa_key()))
    assert "BEGIN PRIVATE KEY-----\nMII" not in str(caught.value)


def test_grant_needs_exactly_one_credential(idp: FakeIdP) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        ClientCredentialsGrant(name="x", token_url=idp.url, client_id=CLIENT_ID, scope=None)


def test_fingerprint_changes_with_the_secret_and_hides_it() -> None:
    def make(secret: str) -> ClientCredentialsGrant:
        return ClientCredentialsGrant(
            name="m365",
            token_url="https://login.example/token",
            client_id=CLIENT_ID,
            scope=SCOPE,
            client_secret=SecretStr(secret),
        )

    assert make("secret-one-123").fingerprint != make("secret-two-456").fingerprint
    assert make("secret-one-123").fingerprint == make("secret-one-123").fingerprint
    # It names the token's Redis key, which anyone with Redis access can list: a short
    # digest, from which the secret cannot be read back.
    assert re.fullmatch(r"[0-9a-f]{16}", make("secret-one-123").fingerprint)
