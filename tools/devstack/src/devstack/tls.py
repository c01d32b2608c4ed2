"""A throwaway certificate authority and server certificate for the broker's TLS listener.

Made fresh at every start in the run dir (EC P-256 keys: a few milliseconds, unlike RSA), valid
for ``127.0.0.1`` and ``localhost`` only. Clients trust ``ca.pem``; nothing else does.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .config import LOCALHOST

VALIDITY = dt.timedelta(days=30)
CLOCK_SKEW = dt.timedelta(minutes=5)


@dataclass(frozen=True)
class ServerCertificate:
    """Where the PEM files of one broker's TLS identity are."""

    ca_file: Path  # the CA certificate clients verify against
    cert_file: Path  # the server certificate followed by the CA (the chain)
    keystore_file: Path  # the server's private key (unencrypted PKCS#8), then the chain


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "devstack (local only)"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def issue_server_certificate(
    directory: Path, hosts: tuple[str, ...] = (LOCALHOST, "localhost")
) -> ServerCertificate:
    """Write a new CA and a server certificate for ``hosts`` (IPs and DNS names) to
    ``directory``: ``ca.pem``, ``server.pem`` (the chain) and ``keystore.pem`` (key and chain,
    mode 0600, as Kafka's ``ssl.keystore.type=PEM`` wants them)."""
    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC) - CLOCK_SKEW
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("devstack local CA")
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    server = (
        x509.CertificateBuilder()
        .subject_name(_name(hosts[0]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    ca_pem = ca.public_bytes(pem)
    out = ServerCertificate(
        ca_file=directory / "ca.pem",
        cert_file=directory / "server.pem",
        keystore_file=directory / "keystore.pem",
    )
    out.ca_file.write_bytes(ca_pem)
    chain = server.public_bytes(pem) + ca_pem
    out.cert_file.write_bytes(chain)
    key_bytes = key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    out.keystore_file.unlink(missing_ok=True)
    fd = os.open(out.keystore_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key_bytes + chain)
    return out
