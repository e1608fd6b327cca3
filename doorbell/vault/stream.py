"""age's STREAM payload: 64 KiB chunks of ChaCha20-Poly1305.

The payload is a 16-byte nonce, then chunks. Chunk ``i`` is sealed under the
payload key with the 12-byte nonce ``i`` (11 bytes, big-endian) followed by a
flag byte that is 1 only on the final chunk. Every chunk but the last holds
exactly 64 KiB of plaintext; the last holds 1 to 64 KiB (0 only when the whole
payload is empty). So the plaintext size follows from the file size, and
chunk ``i`` sits at a known offset: that is what random access stands on.
"""

from typing import NamedTuple

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from doorbell.vault.header import hkdf

CHUNK_SIZE = 64 * 1024
TAG_SIZE = 16
SEALED_CHUNK_SIZE = CHUNK_SIZE + TAG_SIZE
NONCE_SIZE = 16


def payload_key(file_key: bytes, nonce: bytes) -> bytes:
    return hkdf(file_key, nonce, b"payload")


class ChunkCipher:
    """Seals and opens single STREAM chunks under one payload key."""

    def __init__(self, key: bytes) -> None:
        self._aead = ChaCha20Poly1305(key)

    @staticmethod
    def nonce(index: int, last: bool) -> bytes:
        return index.to_bytes(11, "big") + (b"\x01" if last else b"\x00")

    def seal(self, index: int, plaintext: bytes | bytearray | memoryview, last: bool) -> bytes:
        return self._aead.encrypt(self.nonce(index, last), plaintext, None)

    def open(self, index: int, sealed: bytes | bytearray | memoryview, last: bool) -> bytes | None:
        """The plaintext of chunk ``index``, or None if it does not authenticate as such."""
        try:
            return self._aead.decrypt(self.nonce(index, last), sealed, None)
        except InvalidTag:
            return None


class Layout(NamedTuple):
    """Where the chunks of a payload of ``sealed_size`` bytes (after the nonce) lie.

    ``last_index`` is the index of the final chunk and ``last_sealed`` its
    sealed length. ``problem`` is set when no valid payload has this size.
    """

    sealed_size: int
    last_index: int
    last_sealed: int
    problem: str | None = None

    @classmethod
    def of(cls, sealed_size: int) -> "Layout":
        full, rest = divmod(sealed_size, SEALED_CHUNK_SIZE)
        if sealed_size == 0:
            return cls(0, 0, 0, "the payload has no chunks")
        if rest == 0:
            return cls(sealed_size, full - 1, SEALED_CHUNK_SIZE)
        if rest < TAG_SIZE:
            return cls(sealed_size, full, rest, f"chunk {full} is shorter than its tag")
        if rest == TAG_SIZE and full > 0:
            return cls(sealed_size, full, rest, "the final chunk is empty")
        return cls(sealed_size, full, rest)

    @property
    def plaintext_size(self) -> int:
        return self.last_index * CHUNK_SIZE + self.last_sealed - TAG_SIZE

    @staticmethod
    def offset(index: int) -> int:
        """Offset of chunk ``index`` from the start of the chunks."""
        return index * SEALED_CHUNK_SIZE


def sealed_size(plaintext_size: int) -> int:
    """Bytes the chunks of ``plaintext_size`` bytes of plaintext take (nonce excluded)."""
    chunks = max(1, -(-plaintext_size // CHUNK_SIZE))
    return plaintext_size + chunks * TAG_SIZE
