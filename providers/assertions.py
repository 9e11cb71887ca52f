"""Signed JWT assertions: pure functions of their inputs and the clock.

Two kinds: the client assertion that replaces a client secret (RFC 7523 §2.2,
Microsoft certificate credentials) and the Google service-account grant
(RFC 7523 §2.1). Both are tested by decoding them with the public key.
"""

from __future__ import annotations

from typing import Literal

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from providers.keys import ClientCertificate

CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
JWT_BEARER_GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"

AssertionAlgorithm = Literal["PS256", "RS256"]

# Microsoft accepts client assertions valid for 5 to 10 minutes.
CLIENT_ASSERTION_LIFETIME_SECONDS = 300
# Google rejects exp more than one hour after iat.
SERVICE_ACCOUNT_LIFETIME_SECONDS = 3600
# Backdating iat absorbs a server clock slightly behind ours; Google answers
# "Invalid JWT … reasonable timeframe" to an iat in its future.
SERVICE_ACCOUNT_BACKDATE_SECONDS = 45


def client_assertion(
    *,
    client_id: str,
    token_url: str,
    certificate: ClientCertificate,
    now: float,
    jti: str,
    algorithm: AssertionAlgorithm = "PS256",
) -> str:
    """A client assertion signed with the certificate's key.

    Current Microsoft docs ask for PS256 with ``x5t#S256``; older tenants and
    libraries use RS256 with the SHA-1 ``x5t``. Both are accepted.
    """
    headers = {"typ": "JWT"}
    if algorithm == "PS256":
        headers["x5t#S256"] = certificate.thumbprint_sha256
    else:
        headers["x5t"] = certificate.thumbprint_sha1
    issued = int(now)
    claims = {
        "aud": token_url,
        "iss": client_id,
        "sub": client_id,
        "jti": jti,
        "iat": issued,
        "nbf": issued,
        "exp": issued + CLIENT_ASSERTION_LIFETIME_SECONDS,
    }
    import jwt  # on first use: only the profiles that sign assertions pay for PyJWT

    return jwt.encode(claims, certificate.private_key, algorithm=algorithm, headers=headers)


def service_account_assertion(
    *,
    client_email: str,
    private_key: RSAPrivateKey,
    private_key_id: str | None,
    subject: str,
    scope: str,
    token_url: str,
    now: float,
) -> str:
    """The JWT a Google service account exchanges for a token as ``subject``."""
    issued = int(now) - SERVICE_ACCOUNT_BACKDATE_SECONDS
    claims = {
        "iss": client_email,
        "sub": subject,
        "scope": scope,
        "aud": token_url,
        "iat": issued,
        "exp": issued + SERVICE_ACCOUNT_LIFETIME_SECONDS,
    }
    headers = {"kid": private_key_id} if private_key_id else None
    import jwt  # on first use, as above

    return jwt.encode(claims, private_key, algorithm="RS256", headers=headers)
