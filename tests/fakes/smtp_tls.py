"""TLS material for the fake SMTP server: a fresh test CA and a server context it vouches for."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import trustme

__all__ = ["TlsFiles", "make_tls"]


@dataclass(frozen=True)
class TlsFiles:
    ca_pem: Path  # the test CA certificate a client trusts (ca_file)
    server_context: ssl.SSLContext  # server side, with a certificate for the identities
    cert_pem: Path  # that certificate and its key, for servers that load files
    key_pem: Path


def make_tls(directory: Path, identities: tuple[str, ...] = ("127.0.0.1", "localhost")) -> TlsFiles:
    """A fresh test CA (written to directory/ca.pem) and a server context it vouches for."""
    ca = trustme.CA()
    ca_pem = directory / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_pem))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    leaf = ca.issue_cert(*identities)
    leaf.configure_cert(context)
    cert_pem, key_pem = directory / "server-cert.pem", directory / "server-key.pem"
    leaf.cert_chain_pems[0].write_to_path(str(cert_pem))
    leaf.private_key_pem.write_to_path(str(key_pem))
    return TlsFiles(ca_pem=ca_pem, server_context=context, cert_pem=cert_pem, key_pem=key_pem)
