"""The vault: age v1 files (age-encryption.org/v1) on ``cryptography``.

Every clip and thumbnail is a standard age file encrypted to the household's
X25519 recipients, so the stock ``age`` CLI opens it with the owner's identity.
The recorder only ever holds recipients (public keys); see DESIGN.md, laws 1-3.

    from doorbell import vault
    identity = vault.X25519Identity.generate()
    with vault.create("clip.mp4.age", [identity.recipient]) as out:
        out.write(b"...")
    with vault.open_file("clip.mp4.age", [identity]) as clip:
        clip.seek(3); clip.read(10)

This package is the only one that imports the cryptographic primitives.
"""

import io
import os
from collections.abc import Callable

from doorbell.vault.errors import (
    DiskFullError,
    HeaderError,
    HeaderMacError,
    KeyFormatError,
    NoIdentityMatchError,
    PayloadError,
    TruncatedError,
    UnfinishedFileError,
    VaultError,
)
from doorbell.vault.header import VERSION_LINE
from doorbell.vault.keys import (
    MAX_WORK_FACTOR,
    Identity,
    Recipient,
    ScryptIdentity,
    ScryptRecipient,
    X25519Identity,
    X25519Recipient,
    parse_identities,
    parse_recipients,
)
from doorbell.vault.reader import (
    Reader,
    Recovery,
    cut_in_header,
    iter_plaintext,
    open_file,
    open_header,
    recover,
)
from doorbell.vault.sink import PART_SUFFIX, AtomicFileSink, StreamSink, is_disk_full
from doorbell.vault.stream import CHUNK_SIZE
from doorbell.vault.writer import Writer, create

__all__ = [
    "CHUNK_SIZE",
    "MAX_WORK_FACTOR",
    "PART_SUFFIX",
    "AtomicFileSink",
    "DiskFullError",
    "HeaderError",
    "HeaderMacError",
    "Identity",
    "KeyFormatError",
    "NoIdentityMatchError",
    "PayloadError",
    "Reader",
    "Recipient",
    "Recovery",
    "ScryptIdentity",
    "ScryptRecipient",
    "StreamSink",
    "TruncatedError",
    "UnfinishedFileError",
    "VaultError",
    "Writer",
    "X25519Identity",
    "X25519Recipient",
    "create",
    "cut_in_header",
    "decrypt_bytes",
    "encrypt_bytes",
    "is_age_file",
    "is_disk_full",
    "iter_plaintext",
    "load_identities",
    "open_file",
    "open_header",
    "parse_identities",
    "parse_recipients",
    "recover",
]


def encrypt_bytes(data: bytes, recipients: list[Recipient]) -> bytes:
    """A whole age file in memory (for small things: an identity, a test)."""
    out = io.BytesIO()
    with Writer(StreamSink(out), recipients) as writer:
        writer.write(data)
    return out.getvalue()


def decrypt_bytes(data: bytes, identities: list[Identity], source: str | None = None) -> bytes:
    """The plaintext of a whole age file held in memory."""
    stream = io.BytesIO(data)
    try:
        _, cipher = open_header(stream, identities)
        return b"".join(iter_plaintext(stream, cipher, source))
    except VaultError as err:
        err.source = err.source or source
        raise


def is_age_file(data: bytes) -> bool:
    """Whether ``data`` starts like an age v1 file (and not a plaintext key file)."""
    return data.startswith(VERSION_LINE)


def load_identities(
    path: str | os.PathLike[str],
    passphrase: Callable[[], str],
    max_work_factor: int = MAX_WORK_FACTOR,
) -> list[X25519Identity]:
    """Identities from an ``-i`` file: plain ``AGE-SECRET-KEY-1…`` lines, or such a
    file encrypted under a passphrase (as ``keys/identity.age`` is), in which case
    ``passphrase()`` is called for it. Raises VaultError naming ``path``.
    """
    source = os.fspath(path)
    with open(path, "rb") as file:
        data = file.read(1 << 20)
    if is_age_file(data):
        identity = ScryptIdentity(passphrase(), max_work_factor)
        try:
            data = decrypt_bytes(data, [identity], source)
        except NoIdentityMatchError:
            raise NoIdentityMatchError("wrong passphrase for this identity file", source) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise KeyFormatError("not an identity file (not text)", source) from None
    return parse_identities(text, source)
