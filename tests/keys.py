"""Test keys and certificates, made once per run."""

from __future__ import annotations

import datetime as dt
import json

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

SERVICE_ACCOUNT_EMAIL = "mailpipe@example-project.iam.gserviceaccount.com"
SERVICE_ACCOUNT_KEY_ID = "0123456789abcdef0123456789abcdef01234567"


_KEYS: dict[str, rsa.RSAPrivateKey] = {}
_CERTIFICATES: dict[str, str] = {}


def rsa_key(label: str = "default") -> rsa.RSAPrivateKey:
    """One key per label for the whole run (generating one takes a while)."""
    if label not in _KEYS:
        _KEYS[label] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return _KEYS[label]


def private_pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def certificate_pem(label: str = "default") -> str:
    """A self-signed certificate followed by its private key, as Azure certificate files are."""
    if label in _CERTIFICATES:
        return _CERTIFICATES[label]
    key = rsa_key(label)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mailpipe test app")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    _CERTIFICATES[label] = cert.public_bytes(serialization.Encoding.PEM).decode() + private_pem(key)
    return _CERTIFICATES[label]


def certificate_der(label: str = "default") -> bytes:
    cert = x509.load_pem_x509_certificate(certificate_pem(label).encode())
    return cert.public_bytes(serialization.Encoding.DER)


def service_account_json(token_uri: str = "https://oauth2.googleapis.com/token") -> str:
    """A key file shaped like the one the Google Cloud console downloads."""
    return json.dumps(
        {
            "type": "service_account",
            "project_id": "example-project",
            "private_key_id": SERVICE_ACCOUNT_KEY_ID,
            "private_key": private_pem(rsa_key("google")),
            "client_email": SERVICE_ACCOUNT_EMAIL,
            "client_id": "109876543210987654321",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": token_uri,
        }
    )
