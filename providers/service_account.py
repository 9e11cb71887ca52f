"""Google service account with domain-wide delegation (RFC 7523 JWT bearer grant).

No refresh token exists: every refresh signs a new assertion. The assertion's
``sub`` is the mailbox the token acts for, and the SMTP XOAUTH2 ``user=`` must
be that same mailbox.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from providers.assertions import JWT_BEARER_GRANT_TYPE, service_account_assertion
from providers.errors import CredentialsConfigError
from providers.keys import load_rsa_private_key
from providers.token import Token, fingerprint
from providers.token_endpoint import TokenEndpoint

GOOGLE_TOKEN_URL = "https://oauth2.googleapis.com/token"
GMAIL_SCOPE = "https://mail.google.com/"


@dataclass(frozen=True)
class ServiceAccountKey:
    """The parts of a service-account key that sign an assertion."""

    client_email: str
    private_key: RSAPrivateKey = field(repr=False)
    private_key_id: str | None = None

    @classmethod
    def from_json(cls, text: str, *, what: str = "service account key") -> ServiceAccountKey:
        """Read the JSON key file the Google Cloud console downloads."""
        try:
            info = json.loads(text)
        except ValueError:
            raise CredentialsConfigError(f"{what} is not valid JSON") from None
        if not isinstance(info, dict) or info.get("type") != "service_account":
            raise CredentialsConfigError(f'{what} is not a service-account key ("type")')
        missing = [k for k in ("client_email", "private_key") if not info.get(k)]
        if missing:
            raise CredentialsConfigError(f"{what} lacks {', '.join(missing)}")
        return cls(
            client_email=str(info["client_email"]),
            private_key=load_rsa_private_key(str(info["private_key"]), what=what),
            private_key_id=info.get("private_key_id"),
        )

    @classmethod
    def from_pem(
        cls, pem: str, *, client_email: str, private_key_id: str | None = None
    ) -> ServiceAccountKey:
        """A bare PEM key, as users paste it into a "client secret" field."""
        key = load_rsa_private_key(pem, what="service account private key")
        return cls(client_email=client_email, private_key=key, private_key_id=private_key_id)

    @property
    def public_key_digest(self) -> str:
        der = self.private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return hashlib.sha256(der).hexdigest()


@dataclass(frozen=True)
class ServiceAccountGrant:
    """Tokens for ``subject``'s mailbox, signed by the service account's key."""

    name: str
    key: ServiceAccountKey
    subject: str
    scope: str = GMAIL_SCOPE
    token_url: str = GOOGLE_TOKEN_URL
    # The CA of a token endpoint with a private certificate authority.
    ca_file: str | None = None

    @cached_property
    def fingerprint(self) -> str:
        return fingerprint(
            "service_account",
            self.token_url,
            self.key.client_email,
            self.key.public_key_digest,
            self.subject,
            self.scope,
        )

    def fetch(self, endpoint: TokenEndpoint) -> Token:
        response = endpoint.request(
            self.token_url,
            self._form,
            profile=self.name,
            grant="service_account",
            ca_file=self.ca_file,
        )
        return response.token

    def _form(self) -> Mapping[str, str]:
        assertion = service_account_assertion(
            client_email=self.key.client_email,
            private_key=self.key.private_key,
            private_key_id=self.key.private_key_id,
            subject=self.subject,
            scope=self.scope,
            token_url=self.token_url,
            now=time.time(),
        )
        return {"grant_type": JWT_BEARER_GRANT_TYPE, "assertion": assertion}
