"""Load private keys and certificates without ever echoing their contents."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from providers.errors import CredentialsConfigError


def load_rsa_private_key(pem: str, *, what: str) -> RSAPrivateKey:
    """Parse a PEM RSA private key; ``what`` names it in the error."""
    try:
        key = serialization.load_pem_private_key(_pem_bytes(pem), password=None)
    except TypeError:
        raise CredentialsConfigError(
            f"{what} is encrypted with a password; export it without one"
        ) from None
    except ValueError:
        # `from None`: the key is ours to protect, so say only what is wrong.
        raise CredentialsConfigError(
            f"{what} is not a PEM private key (expected '-----BEGIN PRIVATE KEY-----')"
        ) from None
    if not isinstance(key, RSAPrivateKey):
        raise CredentialsConfigError(f"{what} must be an RSA key (RS256/PS256)")
    return key


def _pem_bytes(pem: str) -> bytes:
    # Keys pasted into environment variables often carry literal "\n".
    return pem.replace("\\n", "\n").strip().encode()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass(frozen=True)
class ClientCertificate:
    """A certificate and its private key, for Microsoft's client assertions."""

    private_key: RSAPrivateKey = field(repr=False)
    thumbprint_sha1: str  # base64url, the JWT header's "x5t"
    thumbprint_sha256: str  # base64url, the JWT header's "x5t#S256"

    @classmethod
    def from_pem(cls, pem: str, *, what: str = "client certificate") -> ClientCertificate:
        """Read a PEM bundle holding the certificate and its private key."""
        data = _pem_bytes(pem)
        try:
            certificates = x509.load_pem_x509_certificates(data)
        except ValueError:
            raise CredentialsConfigError(
                f"{what} holds no PEM certificate ('-----BEGIN CERTIFICATE-----')"
            ) from None
        key = load_rsa_private_key(pem, what=what)
        der = certificates[0].public_bytes(serialization.Encoding.DER)
        return cls(
            private_key=key,
            thumbprint_sha1=_b64url(hashlib.sha1(der).digest()),  # noqa: S324 (x5t is SHA-1 by spec)
            thumbprint_sha256=_b64url(hashlib.sha256(der).digest()),
        )
