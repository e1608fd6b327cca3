"""An opened age file for many readers at once: keys derived once, reads by ``os.pread``.

    payload = OpenedPayload("clips/abc.mp4.age", identities)   # header, MAC, final chunk
    data = payload.read_at(5_000_000, 65_536)                  # any thread, any time

A browser seeking in a clip asks for a hundred byte ranges or more; each
must not unwrap the file key (X25519, HMAC) again. This object does that
once, keeps the payload key and the layout, and reads with ``os.pread`` on
one descriptor, which has no shared position, so threads need no lock.
"""

import os
from collections.abc import Sequence

from doorbell.vault.errors import PayloadError
from doorbell.vault.keys import Identity
from doorbell.vault.reader import Reader
from doorbell.vault.stream import CHUNK_SIZE, SEALED_CHUNK_SIZE, Layout


class OpenedPayload:
    """The plaintext of the age file at ``path``: ``size`` bytes, read with :meth:`read_at`."""

    def __init__(self, path: str | os.PathLike[str], identities: Sequence[Identity]) -> None:
        self.path = os.fspath(path)
        # The Reader checks the header, its MAC and the final chunk, with the same errors.
        with Reader(open(self.path, "rb"), identities, self.path, close_stream=True) as reader:
            self.size = reader.size
            self._cipher = reader._cipher
            self._start = reader._start
            self._layout: Layout = reader._layout
        self._fd: int | None = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        stat = os.fstat(self._fd)
        self.ciphertext_size, self.mtime_ns = stat.st_size, stat.st_mtime_ns

    def _chunk(self, index: int) -> bytes:
        if self._fd is None:
            raise ValueError("I/O operation on closed file")
        last = index == self._layout.last_index
        length = self._layout.last_sealed if last else SEALED_CHUNK_SIZE
        offset = self._start + Layout.offset(index)
        sealed = os.pread(self._fd, length, offset)
        plain = self._cipher.open(index, sealed, last=last) if len(sealed) == length else None
        if plain is None:
            raise PayloadError(
                f"chunk {index} fails authentication: damaged", self.path, index, offset
            )
        return plain

    def read_at(self, offset: int, length: int) -> bytes:
        """Up to ``length`` plaintext bytes from ``offset``; decrypts only the chunks touched."""
        if offset < 0 or length < 0:
            raise ValueError("offset and length must not be negative")
        end = min(self.size, offset + length)
        if offset >= end:
            if self._fd is None:
                raise ValueError("I/O operation on closed file")
            return b""
        first, last = offset // CHUNK_SIZE, (end - 1) // CHUNK_SIZE
        pieces = [self._chunk(i) for i in range(first, last + 1)]
        joined = pieces[0] if len(pieces) == 1 else b"".join(pieces)
        skip = offset - first * CHUNK_SIZE
        return joined[skip : skip + end - offset]

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "OpenedPayload":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
