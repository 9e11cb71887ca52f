"""Google service account: the JWT bearer assertion, checked against google-auth's own."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import jwt
import pytest
from google.oauth2 import service_account as google_service_account

from providers import (
    GMAIL_SCOPE,
    CredentialsConfigError,
    PermanentProviderError,
    ServiceAccountGrant,
    ServiceAccountKey,
    TokenEndpoint,
)
from providers.assertions import JWT_BEARER_GRANT_TYPE, service_account_assertion
from tests.fakes.idp import FakeIdP, reply
from tests.fakes.idp_bodies import GOOGLE_BAD_SUBJECT, GOOGLE_CLOCK_SKEW, GOOGLE_UNAUTHORIZED_CLIENT
from tests.keys import (
    SERVICE_ACCOUNT_EMAIL,
    SERVICE_ACCOUNT_KEY_ID,
    private_pem,
    rsa_key,
    service_account_json,
)
from tests.leaks import SecretRegistry

MAILBOX = "alerts@example.org"
GOOGLE_TOKEN_URL = "https://oauth2.googleapis.com/token"


@pytest.fixture
def endpoint() -> Iterator[TokenEndpoint]:
    with httpx.Client(timeout=2.0) as http:
        yield TokenEndpoint(http)


@pytest.fixture
def key(secrets: SecretRegistry) -> ServiceAccountKey:
    secrets.add(private_pem(rsa_key("google")))
    return ServiceAccountKey.from_json(service_account_json())


def decode(assertion: str, audience: str) -> dict[str, object]:
    return jwt.decode(
        assertion, rsa_key("google").public_key(), algorithms=["RS256"], audience=audience
    )


def test_assertion_claims_and_header(
    idp: FakeIdP, endpoint: TokenEndpoint, key: ServiceAccountKey
) -> None:
    grant = ServiceAccountGrant(name="google", key=key, subject=MAILBOX, token_url=idp.url)
    now = int(time.time())
    grant.fetch(endpoint)
    form = idp.requests[0].form
    assert set(form) == {"grant_type", "assertion"}
    assert form["grant_type"] == JWT_BEARER_GRANT_TYPE
    header = jwt.get_unverified_header(form["assertion"])
    assert header == {"alg": "RS256", "typ": "JWT", "kid": SERVICE_ACCOUNT_KEY_ID}
    claims = decode(form["assertion"], idp.url)
    assert claims["iss"] == SERVICE_ACCOUNT_EMAIL
    assert claims["sub"] == MAILBOX
    assert claims["scope"] == GMAIL_SCOPE
    assert claims["aud"] == idp.url
    iat, exp = int(claims["iat"]), int(claims["exp"])  # type: ignore[call-overload]
    assert now - 60 <= iat <= now - 30, "iat is backdated for clock skew"
    assert exp - iat <= 3600


def test_assertion_matches_what_google_auth_builds(key: ServiceAccountKey) -> None:
    info = json.loads(service_account_json())
    theirs_creds = google_service_account.Credentials.from_service_account_info(
        info, scopes=[GMAIL_SCOPE], subject=MAILBOX
    )
    theirs = theirs_creds._make_authorization_grant_assertion()
    ours = service_account_assertion(
        client_email=key.client_email,
        private_key=key.private_key,
        private_key_id=key.private_key_id,
        subject=MAILBOX,
        scope=GMAIL_SCOPE,
        token_url=GOOGLE_TOKEN_URL,
        now=time.time(),
    )
    theirs_text = theirs.decode() if isinstance(theirs, bytes) else theirs
    their_claims = decode(theirs_text, GOOGLE_TOKEN_URL)
    our_claims = decode(ours, GOOGLE_TOKEN_URL)
    for claim in ("iss", "sub", "scope", "aud"):
        assert our_claims[claim] == their_claims[claim], claim
    assert jwt.get_unverified_header(ours)["kid"] == jwt.get_unverified_header(theirs_text)["kid"]
    # google-auth also issues tokens valid for one hour.
    their_life = int(their_claims["exp"]) - int(their_claims["iat"])  # type: ignore[call-overload]
    our_life = int(our_claims["exp"]) - int(our_claims["iat"])  # type: ignore[call-overload]
    assert our_life == their_life == 3600


def test_bare_pem_key_with_client_email(
    idp: FakeIdP, endpoint: TokenEndpoint, secrets: SecretRegistry
) -> None:
    pem = private_pem(rsa_key("google"))
    secrets.add(pem)
    key = ServiceAccountKey.from_pem(pem.replace("\n", "\\n"), client_email=SERVICE_ACCOUNT_EMAIL)
    ServiceAccountGrant(name="google", key=key, subject=MAILBOX, token_url=idp.url).fetch(endpoint)
    claims = decode(idp.requests[0].form["assertion"], idp.url)
    assert claims["iss"] == SERVICE_ACCOUNT_EMAIL


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        (GOOGLE_UNAUTHORIZED_CLIENT, "domain-wide delegation is missing"),
        (GOOGLE_CLOCK_SKEW, "clock is off"),
        (GOOGLE_BAD_SUBJECT, "not a mailbox of the Workspace domain"),
    ],
)
def test_google_errors_are_permanent_with_a_hint(
    idp: FakeIdP,
    endpoint: TokenEndpoint,
    key: ServiceAccountKey,
    answer: tuple[int, dict[str, str]],
    hint: str,
    secrets: SecretRegistry,
) -> None:
    idp.then(reply(*answer))
    grant = ServiceAccountGrant(name="google", key=key, subject=MAILBOX, token_url=idp.url)
    with pytest.raises(PermanentProviderError) as caught:
        grant.fetch(endpoint)
    assert hint in str(caught.value)
    assert len(idp.requests) == 1
    secrets.assert_absent(str(caught.value))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "not valid JSON"),
        ('{"type": "authorized_user"}', "not a service-account key"),
        ('{"type": "service_account", "private_key": "x"}', "lacks client_email"),
        (
            '{"type": "service_account", "client_email": "a@b.c", "private_key": "garbage"}',
            "not a PEM private key",
        ),
    ],
)
def test_unusable_key_files_are_explained(text: str, message: str) -> None:
    with pytest.raises(CredentialsConfigError, match=message):
        ServiceAccountKey.from_json(text)
