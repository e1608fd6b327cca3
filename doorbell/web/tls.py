"""TLS for the LAN: a self-signed certificate made on first run, and its fingerprint.

There is no certificate authority in a home, and the doorbell must not reach
the internet for one. So the device makes its own certificate (ECDSA P-256,
ten years) in ``<data>/tls/``, and shows its SHA-256 fingerprint in the CLI
and the status page: the owner compares it with what the browser shows once,
then trusts it.
"""

import datetime
import ipaddress
import os
import socket
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from doorbell.config import is_loopback

CERT = "cert.pem"
KEY = "key.pem"


def use_tls(setting: str, host: str) -> bool:
    """``auto``: TLS unless the server listens on loopback only."""
    if setting == "on":
        return True
    if setting == "off":
        return False
    return not is_loopback(host)


def ensure_certificate(folder: str | os.PathLike[str], hostname: str | None = None) -> Path:
    """The certificate in ``folder``, made first if there is none; returns its path."""
    folder = Path(folder)
    cert_path, key_path = folder / CERT, folder / KEY
    if cert_path.exists() and key_path.exists():
        return cert_path
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    hostname = hostname or socket.gethostname()
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"doorbell {hostname}")])
    now = datetime.datetime.now(datetime.UTC)
    names: list[x509.GeneralName] = [
        x509.DNSName(hostname),
        x509.DNSName(f"{hostname}.local"),
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
    ]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path


def fingerprint(cert_path: str | os.PathLike[str]) -> str:
    """SHA-256 of the certificate, as browsers show it (AB:CD:…)."""
    cert = x509.load_pem_x509_certificate(Path(cert_path).read_bytes())
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()


def server_context(cert_path: str | os.PathLike[str]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_path, Path(cert_path).with_name(KEY))
    return context
