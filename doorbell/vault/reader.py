"""Decryption: random access for files, streaming for pipes, recovery for ``.part``.

    with vault.open_file("clips/abc.mp4.age", [identity]) as clip:
        clip.seek(clip.size - 64)
        tail = clip.read(64)          # decrypts one chunk, not the file

Opening a :class:`Reader` checks the header, its MAC and the final chunk (so
the plaintext size is authenticated and a cut-short file is caught at once);
each ``read`` then decrypts only the chunks it touches. :func:`iter_plaintext`
decrypts front to back from any stream and releases each chunk only once it
has authenticated. :func:`recover` yields the authenticated prefix of an
unfinished or damaged file and reports what was lost.
"""

import io
import os
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, BinaryIO

from doorbell.vault.errors import (
    HeaderError,
    HeaderMacError,
    NoIdentityMatchError,
    PayloadError,
    TruncatedError,
    VaultError,
)
from doorbell.vault.header import Header, parse_header
from doorbell.vault.keys import Identity
from doorbell.vault.stream import (
    CHUNK_SIZE,
    NONCE_SIZE,
    SEALED_CHUNK_SIZE,
    TAG_SIZE,
    ChunkCipher,
    Layout,
    payload_key,
)

if TYPE_CHECKING:
    from typing_extensions import Buffer  # collections.abc.Buffer from Python 3.12


def open_header(stream: BinaryIO, identities: Sequence[Identity]) -> tuple[Header, ChunkCipher]:
    """Read and check the header and nonce; leave ``stream`` at the first chunk.

    Raises HeaderError, NoIdentityMatchError or HeaderMacError (without a
    source: callers that know the file name add it).
    """
    header = parse_header(stream.readline)
    if len(header.stanzas) > 1 and any(s.type == "scrypt" for s in header.stanzas):
        raise HeaderError("a passphrase (scrypt) stanza must be the only one in a header")
    for identity in identities:
        file_key = identity.unwrap(header.stanzas)
        if file_key is not None:
            break
    else:
        count = len(header.stanzas)
        raise NoIdentityMatchError(
            f"none of the {len(identities)} identities given opens any of its {count} stanzas"
            if len(identities) != 1
            else f"the identity given opens none of its {count} recipient stanzas"
        )
    if not header.verify_mac(file_key):
        raise HeaderMacError("the header was modified after it was written")
    nonce = stream.read(NONCE_SIZE)
    if len(nonce) != NONCE_SIZE:
        raise HeaderError("the file ends before the payload nonce")
    return header, ChunkCipher(payload_key(file_key, nonce))


def _name(stream: object) -> str | None:
    name = getattr(stream, "name", None)
    return name if isinstance(name, str) else None


class Reader(io.RawIOBase):
    """A seekable, read-only view of the plaintext of an age file.

    ``size`` is the plaintext size, known (and authenticated) at open. The
    last decrypted chunk is kept, so small sequential reads cost one
    decryption per 64 KiB. Not thread-safe: one reader per thread.
    """

    def __init__(
        self,
        stream: BinaryIO,
        identities: Sequence[Identity],
        source: str | None = None,
        *,
        close_stream: bool = False,
    ) -> None:
        super().__init__()
        self.source = source or _name(stream)
        self._stream = stream
        self._close_stream = close_stream
        self._pos = 0
        try:
            header, self._cipher = open_header(stream, identities)
            self._start = header.size + NONCE_SIZE
            self._layout = Layout.of(stream.seek(0, io.SEEK_END) - self._start)
            self._cached = (-1, b"")
            self._check_final_chunk()
        except VaultError as err:
            err.source = err.source or self.source
            self.close()
            raise
        self.size = self._layout.plaintext_size

    def _sealed(self, index: int, length: int) -> bytes:
        self._stream.seek(self._start + Layout.offset(index))
        return self._stream.read(length)

    def _check_final_chunk(self) -> None:
        layout = self._layout
        index = layout.last_index
        sealed = b"" if layout.problem else self._sealed(index, layout.last_sealed)
        plain = None if layout.problem else self._cipher.open(index, sealed, last=True)
        if plain is not None:
            self._cached = (index, plain)
            return
        if index > 0 and self._cipher.open(
            index - 1, self._sealed(index - 1, SEALED_CHUNK_SIZE), last=True
        ):
            raise PayloadError(
                f"data follows the final chunk {index - 1}", chunk=index, offset=self._at(index)
            )
        if layout.problem is not None:
            raise TruncatedError(
                f"{layout.problem}: the file was cut short or damaged",
                chunk=index,
                offset=self._at(index),
            )
        if len(sealed) == SEALED_CHUNK_SIZE and self._cipher.open(index, sealed, last=False):
            raise TruncatedError(
                f"the file ends after chunk {index} without its final chunk: it was cut short",
                chunk=index + 1,
                offset=self._at(index + 1),
            )
        raise PayloadError(
            f"chunk {index} (the last) fails authentication: damaged, or cut short",
            chunk=index,
            offset=self._at(index),
        )

    def _at(self, index: int) -> int:
        """Where chunk ``index`` starts in the file."""
        return self._start + Layout.offset(index)

    def _chunk(self, index: int) -> bytes:
        if self._cached[0] == index:
            return self._cached[1]
        last = index == self._layout.last_index
        length = self._layout.last_sealed if last else SEALED_CHUNK_SIZE
        plain = self._cipher.open(index, self._sealed(index, length), last=last)
        if plain is None:
            raise PayloadError(
                f"chunk {index} fails authentication: damaged", self.source, index, self._at(index)
            )
        self._cached = (index, plain)
        return plain

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        self._checkClosed()
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._checkClosed()
        if whence not in (io.SEEK_SET, io.SEEK_CUR, io.SEEK_END):
            raise ValueError(f"invalid whence ({whence}, should be 0, 1 or 2)")
        base = (0, self._pos, self.size)[whence]
        if base + offset < 0:
            raise ValueError(f"negative seek position {base + offset}")
        self._pos = base + offset
        return self._pos

    def _pieces(self, size: int) -> Iterator[memoryview]:
        """Views of the plaintext from the position on, ``size`` bytes at most in all,
        moving the position past each; no copy is made."""
        while size > 0 and self._pos < self.size:
            index, skip = divmod(self._pos, CHUNK_SIZE)
            piece = memoryview(self._chunk(index))[skip : skip + size]
            size -= len(piece)
            self._pos += len(piece)
            yield piece

    def readinto(self, buffer: "Buffer") -> int:
        self._checkClosed()
        out = memoryview(buffer).cast("B")
        done = 0
        for piece in self._pieces(len(out)):
            out[done : done + len(piece)] = piece
            done += len(piece)
        return done

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes (all the rest if negative) from the position on. Holds
        the result and one decrypted chunk, no other copy."""
        self._checkClosed()
        if size is None or size < 0:
            size = self.size
        return b"".join(self._pieces(size))

    def readall(self) -> bytes:
        return self.read(-1)

    def close(self) -> None:
        self._cached = (-1, b"")
        if self._close_stream and not self._stream.closed:
            self._stream.close()
        super().close()


def open_file(path: str | os.PathLike[str], identities: Sequence[Identity]) -> Reader:
    """Open the age file at ``path`` for random-access reading."""
    stream = open(path, "rb")  # noqa: SIM115 - the Reader owns and closes it
    return Reader(stream, identities, os.fspath(path), close_stream=True)


def _read_full(stream: BinaryIO, size: int) -> bytes:
    parts = []
    while size > 0:
        part = stream.read(size)
        if not part:
            break
        parts.append(part)
        size -= len(part)
    return b"".join(parts)


def _position(stream: BinaryIO) -> int | None:
    """Where ``stream`` is, or None for a pipe."""
    try:
        return stream.tell()
    except (OSError, ValueError):
        return None


def iter_plaintext(
    stream: BinaryIO, cipher: ChunkCipher, source: str | None = None
) -> Iterator[bytes]:
    """Decrypt the chunks of ``stream`` in order, each yielded once authenticated.

    Works on pipes (no seeking). Raises PayloadError naming the chunk that
    fails (and where it is in the file, when the stream can tell), or
    TruncatedError when the stream ends before the final chunk; everything
    yielded before that is authentic.
    """
    index = 0
    released = 0
    start = _position(stream)

    def at(index: int) -> int | None:
        return None if start is None else start + Layout.offset(index)

    while True:
        sealed = _read_full(stream, SEALED_CHUNK_SIZE)
        last = len(sealed) < SEALED_CHUNK_SIZE
        if not sealed:
            raise TruncatedError(
                f"the payload ends after chunk {index - 1} without its final chunk"
                if index
                else "the payload has no chunks",
                source,
                index,
                released,
                at(index),
            )
        if len(sealed) <= TAG_SIZE and (index > 0 or len(sealed) < TAG_SIZE):
            problem = "is empty" if len(sealed) == TAG_SIZE else "is shorter than its tag"
            raise PayloadError(f"the final chunk {index} {problem}", source, index, at(index))
        plain = None if last else cipher.open(index, sealed, last=False)
        if plain is None:
            last = True
            plain = cipher.open(index, sealed, last=True)
        if plain is None:
            raise PayloadError(
                f"chunk {index} fails authentication: damaged, or cut short",
                source,
                index,
                at(index),
            )
        yield plain
        if last:
            if stream.read(1):
                raise PayloadError(
                    f"data follows the final chunk {index}", source, index + 1, at(index + 1)
                )
            return
        released += len(plain)
        index += 1


def cut_in_header(stream: BinaryIO) -> str | None:
    """Why nothing can be recovered from ``stream``, judged without any identity: it is
    empty, or ends inside its header or nonce, or right after them (a power cut in a
    file's first moment). None otherwise: a file with a whole header and some payload,
    or a malformed header followed by more data (a damaged file, for ``recover`` to
    judge with identities). Reads the header only.
    """
    try:
        parse_header(stream.readline)
    except HeaderError:
        if stream.tell() == 0 and not stream.read(1):
            return "the file is empty"
        # A cut header leaves the stream at its end; a malformed one has more after it.
        return None if stream.read(1) else "the file ends inside its age header"
    rest = _read_full(stream, NONCE_SIZE + 1)
    if len(rest) < NONCE_SIZE:
        return "the file ends inside its payload nonce"
    if len(rest) == NONCE_SIZE:
        return "the file ends before its first chunk"
    return None


class Recovery:
    """What :func:`recover` found: how much is intact and how much was lost."""

    def __init__(self) -> None:
        self.plaintext_bytes = 0
        self.chunks = 0
        self.complete = False
        self.lost_bytes = 0  # ciphertext bytes after the intact prefix
        self.error: PayloadError | None = None

    def __repr__(self) -> str:
        return f"Recovery({self.describe()})"

    def describe(self) -> str:
        if self.complete:
            return f"complete: {self.plaintext_bytes} bytes, nothing lost"
        reason = self.error.detail if self.error else "unfinished"
        return (
            f"recovered {self.plaintext_bytes} bytes ({self.chunks} chunks); "
            f"{self.lost_bytes} bytes after them could not be authenticated ({reason})"
        )


def recover(
    stream: BinaryIO, identities: Sequence[Identity], report: Recovery, source: str | None = None
) -> Iterator[bytes]:
    """Yield the authenticated prefix of ``stream``, filling in ``report`` as it goes.

    Header problems still raise: without a header nothing can be recovered.
    """
    source = source or _name(stream)
    try:
        _, cipher = open_header(stream, identities)
    except VaultError as err:
        err.source = err.source or source
        raise
    chunk_start = stream.tell()
    try:
        for plain in iter_plaintext(stream, cipher, source):
            report.plaintext_bytes += len(plain)
            report.chunks += 1
            yield plain
        report.complete = True
    except PayloadError as err:
        report.error = err
        end = stream.seek(0, io.SEEK_END)
        report.lost_bytes = end - chunk_start - report.chunks * SEALED_CHUNK_SIZE
