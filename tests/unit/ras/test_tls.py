"""Self-generated CA and server certificate; TLS 1.2+ server contexts over real sockets."""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
import warnings
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from heslock.errors import UsageError
from heslock.ras.tls import client_context, create_certificates, server_context


@pytest.fixture
def paths(tmp_path: Path) -> dict[str, Path]:
    tls = tmp_path / "tls"
    return {
        "ca_cert_path": tls / "ca.pem",
        "ca_key_path": tls / "ca.key",
        "cert_path": tls / "server.pem",
        "key_path": tls / "server.key",
    }


def test_files_and_permissions(paths: dict[str, Path]) -> None:
    create_certificates(**paths, domain="ras.example.org")
    assert paths["ca_key_path"].stat().st_mode & 0o777 == 0o600
    assert paths["key_path"].stat().st_mode & 0o777 == 0o600
    assert paths["cert_path"].stat().st_mode & 0o777 == 0o644
    with pytest.raises(UsageError, match="already exists"):
        create_certificates(**paths, domain="ras.example.org")


def test_certificate_contents(paths: dict[str, Path]) -> None:
    create_certificates(**paths, domain="ras.example.org")
    ca = x509.load_pem_x509_certificate(paths["ca_cert_path"].read_bytes())
    cert = x509.load_pem_x509_certificate(paths["cert_path"].read_bytes())
    cert.verify_directly_issued_by(ca)
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    assert isinstance(cert.public_key().curve, ec.SECP256R1)  # type: ignore[union-attr]  # checked above
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(san.get_values_for_type(x509.DNSName)) == {"localhost", "ras.example.org"}
    assert set(san.get_values_for_type(x509.IPAddress)) == {
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    }
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


async def _handshake(server: ssl.SSLContext, client: ssl.SSLContext) -> str:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"hello")
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    listener = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server)
    port = listener.sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port, ssl=client, server_hostname="localhost"),
            timeout=10,
        )
        data = await asyncio.wait_for(reader.read(), timeout=10)
        ssl_object = writer.get_extra_info("ssl_object")
        version = ssl_object.version()
        writer.close()
        await writer.wait_closed()
        assert data == b"hello"
        return str(version)
    finally:
        listener.close()
        await listener.wait_closed()


async def test_handshake_with_the_ca(paths: dict[str, Path]) -> None:
    create_certificates(**paths, domain="ras.example.org")
    server = server_context(paths["cert_path"], paths["key_path"])
    assert server.minimum_version == ssl.TLSVersion.TLSv1_2
    version = await _handshake(server, client_context(paths["ca_cert_path"]))
    assert version in {"TLSv1.2", "TLSv1.3"}


async def test_old_tls_is_refused(paths: dict[str, Path]) -> None:
    create_certificates(**paths, domain="ras.example.org")
    server = server_context(paths["cert_path"], paths["key_path"])
    client = client_context(paths["ca_cert_path"])
    with warnings.catch_warnings():  # setting a deprecated version is the point here
        warnings.simplefilter("ignore", DeprecationWarning)
        client.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        client.maximum_version = ssl.TLSVersion.TLSv1_1
    with pytest.raises((ssl.SSLError, ConnectionError)):
        await _handshake(server, client)


async def test_untrusted_ca_is_refused(paths: dict[str, Path], tmp_path: Path) -> None:
    create_certificates(**paths, domain="ras.example.org")
    other = tmp_path / "other"
    create_certificates(
        other / "ca.pem", other / "ca.key", other / "s.pem", other / "s.key", domain="x.org"
    )
    server = server_context(paths["cert_path"], paths["key_path"])
    with pytest.raises(ssl.SSLCertVerificationError):
        await _handshake(server, client_context(other / "ca.pem"))


def test_missing_files_are_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        server_context(tmp_path / "none.pem", tmp_path / "none.key")
    (tmp_path / "bad.pem").write_text("not a certificate")
    (tmp_path / "bad.key").write_text("not a key")
    with pytest.raises(UsageError, match="cannot load TLS certificate"):
        server_context(tmp_path / "bad.pem", tmp_path / "bad.key")
