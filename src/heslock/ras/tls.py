"""TLS for the RAS: a self-generated CA and server certificate, and server SSL contexts.

ISO/IEC 14543-5-104 secures RAC <-> RAS (HTTPS) and BGW <-> RAS (XMPP) with TLS; we
require TLS 1.2 or later (RFC 9325 section 3.1.1). ``heslock ras init`` makes a private
CA (ECDSA P-256) and a server certificate for ``localhost``, ``127.0.0.1``, ``::1`` and
the configured domain, so a fresh install speaks TLS at once; clients trust ``ca.pem``.
Real certificates (e.g. ACME) replace them by pointing ``tls_cert``/``tls_key`` elsewhere.
Private keys are written 0600 and never overwritten.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from heslock.errors import UsageError

#: The private CA signs only this installation's server certificates; ten years.
CA_VALIDITY: Final = dt.timedelta(days=3650)
#: CA/Browser Forum caps public certificates at 398 days; a private one may live
#: longer, but a yearly renewal (re-run init with --force) keeps keys fresh: 397 days.
SERVER_VALIDITY: Final = dt.timedelta(days=397)
#: Allow for clocks a little behind ours.
BACKDATE: Final = dt.timedelta(minutes=5)
MIN_TLS_VERSION: Final = ssl.TLSVersion.TLSv1_2
LOOPBACK_NAMES: Final = ("localhost",)
LOOPBACK_ADDRESSES: Final = ("127.0.0.1", "::1")


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "heslock RAS"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def generate_ca(
    common_name: str, now: dt.datetime | None = None
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A self-signed CA that may sign end-entity certificates only (path length 0)."""
    now = now or dt.datetime.now(dt.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(common_name)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + CA_VALIDITY)
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def server_names(domain: str) -> list[x509.GeneralName]:
    """SANs of the server certificate: the loopback names and the configured domain."""
    names: list[x509.GeneralName] = [x509.DNSName(n) for n in LOOPBACK_NAMES]
    if domain not in LOOPBACK_NAMES:
        names.append(x509.DNSName(domain))
    names.extend(x509.IPAddress(ipaddress.ip_address(a)) for a in LOOPBACK_ADDRESSES)
    return names


def generate_server_cert(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    domain: str,
    now: dt.datetime | None = None,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A TLS server certificate (serverAuth) for ``domain`` and loopback, signed by the CA."""
    now = now or dt.datetime.now(dt.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(domain))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(min(now + SERVER_VALIDITY, ca_cert.not_valid_after_utc))
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
        .add_extension(x509.SubjectAlternativeName(server_names(domain)), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` with ``mode`` (never overwrite), durably."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    except FileExistsError:
        raise UsageError(f"{path} already exists; not overwriting it") from None
    try:
        os.fchmod(fd, mode)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def create_certificates(
    ca_cert_path: Path, ca_key_path: Path, cert_path: Path, key_path: Path, domain: str
) -> x509.Certificate:
    """Write a new CA and server certificate; keys 0600, certificates 0644."""
    ca_key, ca_cert = generate_ca(f"heslock RAS CA ({domain})")
    key, cert = generate_server_cert(ca_key, ca_cert, domain)
    _write_new(ca_key_path, _key_pem(ca_key), 0o600)
    _write_new(ca_cert_path, ca_cert.public_bytes(serialization.Encoding.PEM), 0o644)
    _write_new(key_path, _key_pem(key), 0o600)
    _write_new(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return cert


def server_context(cert_path: Path, key_path: Path) -> ssl.SSLContext:
    """An SSL context for the HTTPS and XMPP listeners: TLS 1.2+, no client certificates."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = MIN_TLS_VERSION
    try:
        context.load_cert_chain(cert_path, key_path)
    except FileNotFoundError as exc:
        raise UsageError(
            f"TLS file {exc.filename} does not exist (run `heslock ras init`, "
            "or set tls_cert and tls_key)"
        ) from None
    except (ssl.SSLError, OSError) as exc:
        raise UsageError(
            f"cannot load TLS certificate {cert_path} with key {key_path}: {exc}"
        ) from None
    return context


def client_context(ca_path: Path) -> ssl.SSLContext:
    """A client context that trusts only the given CA (tests, the RAC, the BGW)."""
    context = ssl.create_default_context(cafile=str(ca_path))
    context.minimum_version = MIN_TLS_VERSION
    return context
