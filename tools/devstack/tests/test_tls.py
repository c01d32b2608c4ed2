"""Unit tests: the throwaway CA and the broker's server certificate for the SASL_SSL listener."""

from __future__ import annotations

import ipaddress
import ssl
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from cryptography.x509.oid import ExtendedKeyUsageOID

from devstack.tls import issue_server_certificate

pytestmark = pytest.mark.unit


def test_the_server_certificate_is_signed_by_the_ca_for_localhost_only(tmp_path: Path) -> None:
    issued = issue_server_certificate(tmp_path / "tls")
    ca = x509.load_pem_x509_certificate(issued.ca_file.read_bytes())
    server, chained_ca = x509.load_pem_x509_certificates(issued.cert_file.read_bytes())
    assert chained_ca == ca
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert not server.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    server.verify_directly_issued_by(ca)
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    usage = server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert server.not_valid_before_utc < server.not_valid_after_utc


def test_the_keystore_holds_the_unencrypted_key_then_the_chain_readable_only_by_us(
    tmp_path: Path,
) -> None:
    issued = issue_server_certificate(tmp_path)
    pem = issued.keystore_file.read_bytes()
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS#8, no password
    assert pem.endswith(issued.cert_file.read_bytes())
    key = load_pem_private_key(
        pem.split(b"-----END PRIVATE KEY-----")[0] + b"-----END PRIVATE KEY-----\n", None
    )
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    (server, *_) = x509.load_pem_x509_certificates(issued.cert_file.read_bytes())
    assert server.public_key() == key.public_key()
    assert stat.S_IMODE(issued.keystore_file.stat().st_mode) == 0o600


def handshake(server: ssl.SSLContext, client: ssl.SSLContext, host: str) -> None:
    """A TLS handshake in memory between the two contexts; raises what the client refuses."""
    s_in, s_out, c_in, c_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    s = server.wrap_bio(s_in, s_out, server_side=True)
    c = client.wrap_bio(c_in, c_out, server_hostname=host)
    done = {"s": False, "c": False}
    for _ in range(20):
        for name, side in (("c", c), ("s", s)):
            if not done[name]:
                try:
                    side.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if all(done.values()):
            return
    raise AssertionError("handshake did not finish")


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_clients_with_the_ca_complete_a_handshake_with_host_checks(
    tmp_path: Path, host: str
) -> None:
    issued = issue_server_certificate(tmp_path)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(issued.keystore_file)  # key and chain in one file, as Kafka reads it
    handshake(server, ssl.create_default_context(cafile=issued.ca_file), host)


def test_clients_without_the_ca_or_for_another_host_are_refused(tmp_path: Path) -> None:
    issued = issue_server_certificate(tmp_path)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(issued.keystore_file)
    with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
        handshake(server, ssl.create_default_context(), "127.0.0.1")
    with pytest.raises(ssl.SSLCertVerificationError, match=r"mismatch|doesn't match"):
        handshake(server, ssl.create_default_context(cafile=issued.ca_file), "example.com")
    other = issue_server_certificate(tmp_path / "other")
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(server, ssl.create_default_context(cafile=other.ca_file), "127.0.0.1")


def test_every_start_makes_a_new_ca(tmp_path: Path) -> None:
    first = issue_server_certificate(tmp_path).ca_file.read_bytes()
    second = issue_server_certificate(tmp_path).ca_file.read_bytes()
    assert first != second
