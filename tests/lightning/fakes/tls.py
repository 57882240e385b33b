"""Self-signed TLS certificates for the fakes, made as node software makes its ``tls.cert``.

LND and CLNRest generate their own certificate: ECDSA P-256, self-signed, a CA (so that it can be
its own trust anchor), naming ``localhost`` and the node's addresses. :func:`make_cert` writes such
a pair into a test's ``tmp_path``; each call makes a new key, so two calls give two certificates
that do not match each other (the TLS mismatch tests).
"""

from __future__ import annotations

import datetime
import ipaddress
import secrets
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def make_cert(tmp_path: Path, host: str = "127.0.0.1") -> tuple[Path, Path]:
    """A new self-signed certificate for ``host`` (and ``localhost``): (cert PEM path, key path)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "boltgate test node"),
            x509.NameAttribute(NameOID.COMMON_NAME, "localhost"),
        ]
    )
    names: list[x509.GeneralName] = [x509.DNSName("localhost")]
    try:
        names.append(x509.IPAddress(ipaddress.ip_address(host)))
    except ValueError:
        names.append(x509.DNSName(host))
    now = datetime.datetime.now(datetime.UTC)
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    stem = f"tls-{secrets.token_hex(4)}"
    cert_path = tmp_path / f"{stem}.cert"
    key_path = tmp_path / f"{stem}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


def server_context(cert_path: Path, key_path: Path) -> ssl.SSLContext:
    """The server side of a pair made by :func:`make_cert`."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    return context


def der_of(cert_path: Path) -> bytes:
    """The certificate's DER bytes (what lndconnect URLs carry, base64url)."""
    return ssl.PEM_cert_to_DER_cert(cert_path.read_text())
