"""OAuth 2.0 client credentials grant (RFC 6749 §4.4): Microsoft 365 app-only and others.

The client proves itself with a secret (in the form body, or HTTP Basic where
the provider wants it) or with a certificate (a signed client assertion).
Client credentials never return a refresh token.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal

from pydantic import SecretStr

from providers.assertions import CLIENT_ASSERTION_TYPE, AssertionAlgorithm, client_assertion
from providers.keys import ClientCertificate
from providers.token import Token, fingerprint
from providers.token_endpoint import TokenEndpoint

ClientAuth = Literal["body", "basic"]


@dataclass(frozen=True)
class ClientCredentialsGrant:
    """App-only access: exactly one of ``client_secret`` and ``certificate``."""

    name: str
    token_url: str
    client_id: str
    scope: str | None
    client_secret: SecretStr | None = None
    certificate: ClientCertificate | None = field(default=None, repr=False)
    client_auth: ClientAuth = "body"
    assertion_algorithm: AssertionAlgorithm = "PS256"
    # The CA of a token endpoint with a private certificate authority.
    ca_file: str | None = None

    def __post_init__(self) -> None:
        if (self.client_secret is None) == (self.certificate is None):
            raise ValueError("give exactly one of client_secret and certificate")

    @cached_property
    def fingerprint(self) -> str:
        secret = self.client_secret.get_secret_value() if self.client_secret else None
        return fingerprint(
            "client_credentials",
            self.token_url,
            self.client_id,
            self.scope,
            secret,
            self.certificate.thumbprint_sha256 if self.certificate else None,
        )

    def fetch(self, endpoint: TokenEndpoint) -> Token:
        basic = None
        if self.client_secret is not None and self.client_auth == "basic":
            basic = (self.client_id, self.client_secret.get_secret_value())
        response = endpoint.request(
            self.token_url,
            self._form,
            profile=self.name,
            grant="client_credentials",
            ca_file=self.ca_file,
            basic_auth=basic,
        )
        return response.token

    def _form(self) -> Mapping[str, str]:
        form = {"grant_type": "client_credentials", "client_id": self.client_id}
        if self.scope:
            form["scope"] = self.scope
        if self.certificate is not None:
            form["client_assertion_type"] = CLIENT_ASSERTION_TYPE
            form["client_assertion"] = client_assertion(
                client_id=self.client_id,
                token_url=self.token_url,
                certificate=self.certificate,
                now=time.time(),
                jti=str(uuid.uuid4()),
                algorithm=self.assertion_algorithm,
            )
        elif self.client_secret is not None and self.client_auth == "body":
            form["client_secret"] = self.client_secret.get_secret_value()
        return form
