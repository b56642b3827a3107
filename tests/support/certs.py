"""Test PKI: one CA and one server certificate for the mail servers the tests run.

Owns the certificates every TLS endpoint in the test suite presents (Dovecot IMAP/IMAPS,
Postfix SMTP/SMTPS) and the CA file clients trust.

Invariants:
- The server certificate's SubjectAltName is ``DNS:localhost`` and nothing else. A client
  that connects to ``localhost`` verifies it; a client that connects to ``127.0.0.1`` fails
  hostname verification (``ssl.SSLCertVerificationError``). That second case is how the
  suite exercises "the server presents a certificate that does not verify" without a
  second PKI.
- Keys are ECDSA P-256: generating them takes milliseconds, and Dovecot, Postfix and
  Python's ``ssl`` all accept them at OpenSSL's default security level.
- ``make_test_pki`` is idempotent per directory: if the three files exist it returns them
  unchanged, so the servers of one run always share one CA.
- Files are written with ``cryptography`` only; no ``openssl`` subprocess.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SERVER_HOSTNAME = "localhost"
CERTIFICATE_LIFETIME_DAYS = 30
# Backdated so a clock that differs slightly between processes never sees "not yet valid".
CLOCK_SKEW_ALLOWANCE = datetime.timedelta(hours=1)


@dataclass(frozen=True)
class TestPKI:
    """Paths of the PEM files: trust ``ca_file``; servers present ``cert_file``/``key_file``."""

    __test__ = False  # not a test class, despite the name

    ca_file: Path
    cert_file: Path
    key_file: Path


def make_test_pki(directory: Path) -> TestPKI:
    """Create (or reuse) ``ca.pem``, ``server-cert.pem`` and ``server-key.pem`` in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    pki = TestPKI(
        ca_file=directory / "ca.pem",
        cert_file=directory / "server-cert.pem",
        key_file=directory / "server-key.pem",
    )
    if all(path.exists() for path in (pki.ca_file, pki.cert_file, pki.key_file)):
        return pki

    now = datetime.datetime.now(datetime.UTC)
    not_before = now - CLOCK_SKEW_ALLOWANCE
    not_after = now + datetime.timedelta(days=CERTIFICATE_LIFETIME_DAYS)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Mail API Test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, SERVER_HOSTNAME)]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        # DNS:localhost only, on purpose: see the module docstring.
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(SERVER_HOSTNAME)]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(server_key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    pki.ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    pki.cert_file.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    # Both servers read the key as root before dropping privileges, so owner-only is enough.
    pki.key_file.touch(mode=0o600)
    pki.key_file.write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return pki
