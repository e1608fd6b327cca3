"""Recipients (who a file is encrypted to) and identities (what opens it).

Two kinds, as in age:

* X25519: ``age1…`` public keys and ``AGE-SECRET-KEY-1…`` identities. The
  recorder holds only recipients; the owner's identity opens every clip.
* scrypt: a passphrase. Used for ``keys/identity.age``, the owner identity
  wrapped under the owner's passphrase, which the stock ``age -d`` opens too.

A recipient ``wrap``s a file key into a stanza; an identity ``unwrap``s it
from a header's stanzas, returns ``None`` when no stanza is for it, and raises
:class:`HeaderError` for a malformed stanza of its own type.
"""

import os
import re
from collections.abc import Callable, Sequence
from typing import NamedTuple, Protocol, TypeVar

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from doorbell.vault import bech32
from doorbell.vault.errors import HeaderError, KeyFormatError
from doorbell.vault.header import FILE_KEY_SIZE, Stanza, b64decode, b64encode, hkdf

_X25519_INFO = b"age-encryption.org/v1/X25519"
_SCRYPT_LABEL = b"age-encryption.org/v1/scrypt"
_ZERO_NONCE = bytes(12)
_WRAPPED_SIZE = FILE_KEY_SIZE + 16
_WORK_FACTOR = re.compile(r"[1-9][0-9]{0,1}")

#: The highest scrypt work factor (log2 N) accepted when opening a file, as in
#: age. 22 costs 4 GiB; callers on small devices pass a lower cap.
MAX_WORK_FACTOR = 22
_K = TypeVar("_K")


class Recipient(Protocol):
    def wrap(self, file_key: bytes) -> Stanza: ...


class Identity(Protocol):
    def unwrap(self, stanzas: Sequence[Stanza]) -> bytes | None: ...


def _aead_wrap(key: bytes, file_key: bytes) -> bytes:
    return ChaCha20Poly1305(key).encrypt(_ZERO_NONCE, file_key, None)


def _aead_unwrap(key: bytes, body: bytes) -> bytes | None:
    try:
        return ChaCha20Poly1305(key).decrypt(_ZERO_NONCE, body, None)
    except InvalidTag:
        return None


class X25519Recipient(NamedTuple):
    """An ``age1…`` public key. Safe to print, log and store anywhere."""

    public: bytes

    @classmethod
    def parse(cls, text: str) -> "X25519Recipient":
        text = text.strip()
        if text.upper().startswith("AGE-SECRET-KEY-"):
            raise KeyFormatError(
                "a secret identity was given where a public age1… recipient belongs "
                "(its recipient is printed by 'age-keygen -y')"
            )
        # Quote only what looks like a public key; anything else may be a secret.
        shown = repr(text) if text.startswith("age1") and len(text) < 100 else "the value"
        try:
            hrp, data = bech32.decode(text)
        except KeyFormatError as err:
            raise KeyFormatError(f"{shown} is not an age1… recipient ({err.detail})") from None
        if hrp != "age" or len(data) != 32 or text != text.lower():
            raise KeyFormatError(f"{shown} is not an age1… X25519 recipient")
        return cls(data)

    def __str__(self) -> str:
        return bech32.encode("age", self.public)

    def wrap(self, file_key: bytes) -> Stanza:
        ephemeral = X25519PrivateKey.generate()
        share = ephemeral.public_key().public_bytes_raw()
        shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(self.public))
        key = hkdf(shared, share + self.public, _X25519_INFO)
        return Stanza("X25519", (b64encode(share).decode(),), _aead_wrap(key, file_key))


class X25519Identity:
    """An ``AGE-SECRET-KEY-1…`` identity. Never print, log or write it in plaintext."""

    __slots__ = ("_key",)

    def __init__(self, key: X25519PrivateKey) -> None:
        self._key = key

    @classmethod
    def generate(cls) -> "X25519Identity":
        return cls(X25519PrivateKey.generate())

    @classmethod
    def parse(cls, text: str) -> "X25519Identity":
        try:
            hrp, data = bech32.decode(text.strip())
        except KeyFormatError as err:
            raise KeyFormatError(f"not an AGE-SECRET-KEY-1… identity ({err.detail})") from None
        if hrp != "age-secret-key-" or len(data) != 32 or text.strip() != text.strip().upper():
            raise KeyFormatError("not an AGE-SECRET-KEY-1… identity")
        return cls(X25519PrivateKey.from_private_bytes(data))

    def __repr__(self) -> str:
        return f"X25519Identity(recipient={self.recipient})"

    def secret(self) -> str:
        """The ``AGE-SECRET-KEY-1…`` text, for the identity file and ``keys export`` only."""
        return bech32.encode("age-secret-key-", self._key.private_bytes_raw()).upper()

    @property
    def recipient(self) -> X25519Recipient:
        return X25519Recipient(self._key.public_key().public_bytes_raw())

    def unwrap(self, stanzas: Sequence[Stanza]) -> bytes | None:
        ours = self.recipient.public
        for stanza in stanzas:
            if stanza.type != "X25519":
                continue
            if len(stanza.args) != 1:
                raise HeaderError("an X25519 stanza must have exactly one argument")
            share = b64decode(stanza.args[0], "an X25519 share")
            if len(share) != 32:
                raise HeaderError("an X25519 share must be 32 bytes")
            if len(stanza.body) != _WRAPPED_SIZE:
                raise HeaderError("an X25519 stanza body must be 32 bytes")
            shared = self._exchange(share)
            key = hkdf(shared, share + ours, _X25519_INFO)
            file_key = _aead_unwrap(key, stanza.body)
            if file_key is not None:
                return file_key
        return None

    def _exchange(self, share: bytes) -> bytes:
        try:
            shared = self._key.exchange(X25519PublicKey.from_public_bytes(share))
        except ValueError:  # cryptography refuses the all-zero result itself
            shared = bytes(32)
        if shared == bytes(32):
            raise HeaderError("an X25519 share is a low-order point")
        return shared


class ScryptRecipient:
    """Encrypt to a passphrase with scrypt of work factor ``2**work_factor``."""

    __slots__ = ("passphrase", "work_factor")

    def __init__(self, passphrase: str, work_factor: int = 18) -> None:
        self.passphrase = passphrase
        self.work_factor = work_factor

    def __repr__(self) -> str:
        return f"ScryptRecipient(work_factor={self.work_factor})"

    def wrap(self, file_key: bytes) -> Stanza:
        salt = os.urandom(16)
        key = scrypt_key(self.passphrase, salt, self.work_factor)
        args = (b64encode(salt).decode(), str(self.work_factor))
        return Stanza("scrypt", args, _aead_wrap(key, file_key))


class ScryptIdentity:
    """Open a passphrase-encrypted file; refuse work factors above ``max_work_factor``."""

    __slots__ = ("max_work_factor", "passphrase")

    def __init__(self, passphrase: str, max_work_factor: int = MAX_WORK_FACTOR) -> None:
        self.passphrase = passphrase
        self.max_work_factor = max_work_factor

    def __repr__(self) -> str:
        return f"ScryptIdentity(max_work_factor={self.max_work_factor})"

    def unwrap(self, stanzas: Sequence[Stanza]) -> bytes | None:
        for stanza in stanzas:
            if stanza.type != "scrypt":
                continue
            if len(stanza.args) != 2:
                raise HeaderError("a scrypt stanza must have exactly two arguments")
            salt = b64decode(stanza.args[0], "a scrypt salt")
            if len(salt) != 16:
                raise HeaderError("a scrypt salt must be 16 bytes")
            if not _WORK_FACTOR.fullmatch(stanza.args[1]):
                raise HeaderError("a scrypt work factor must be a decimal from 1 to 99")
            work_factor = int(stanza.args[1])
            if work_factor > self.max_work_factor:
                raise HeaderError(
                    f"scrypt work factor {work_factor} is above the limit of "
                    f"{self.max_work_factor} (it would need {2**work_factor // 1024} MiB)"
                )
            if len(stanza.body) != _WRAPPED_SIZE:
                raise HeaderError("a scrypt stanza body must be 32 bytes")
            file_key = _aead_unwrap(scrypt_key(self.passphrase, salt, work_factor), stanza.body)
            if file_key is not None:
                return file_key
        return None


def scrypt_key(passphrase: str, salt: bytes, work_factor: int) -> bytes:
    """The stanza key for ``passphrase``: scrypt(N=2**work_factor, r=8, p=1)."""
    kdf = Scrypt(salt=_SCRYPT_LABEL + salt, length=32, n=2**work_factor, r=8, p=1)
    return kdf.derive(passphrase.encode("utf-8"))


def _parse_key_file(text: str, source: str, parse: Callable[[str], _K], what: str) -> list[_K]:
    """Keys from age's key-file format: one a line, blank lines and ``#`` comments skipped."""
    found = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            found.append(parse(line))
        except KeyFormatError as err:
            raise KeyFormatError(f"line {number}: {err.detail}", source) from None
    if not found:
        raise KeyFormatError(f"no {what} in the file", source)
    return found


def parse_recipients(text: str, source: str = "recipients") -> list[X25519Recipient]:
    """Recipients from a file in age's ``-R`` format: ``age1…`` lines."""
    return _parse_key_file(text, source, X25519Recipient.parse, "recipients")


def parse_identities(text: str, source: str = "identity") -> list[X25519Identity]:
    """Identities from a file in age's ``-i`` format: ``AGE-SECRET-KEY-1…`` lines."""
    return _parse_key_file(text, source, X25519Identity.parse, "identities")
