"""Streaming encryption: a file object that writes an age v1 file as you go.

    writer = vault.create("clips/abc.mp4.age", recipients)
    writer.write(data)      # any number of times, any sizes
    writer.close()          # final chunk, fsync, rename, fsync the folder

The writer holds at most one 64 KiB chunk of plaintext. Each sealed chunk goes
to its sink at once (no user-space buffering); :mod:`doorbell.vault.sink` says
where it goes and how it is made durable (for a file: ``<name>.part``, fsynced
as it grows, renamed into place when finished), so a power cut leaves a
``.part`` whose authenticated prefix can be recovered (``reader.recover``).
Only ``close()`` writes the final chunk and finishes the file.

A full disk (ENOSPC, EDQUOT) while writing a file does not leave it cut off:
the writer keeps the plaintext of the last chunk it sealed (64 KiB, in RAM),
truncates that chunk away and seals it again as the final one, in the space
it just freed, then finishes the file and raises :class:`DiskFullError`. The
result is a whole, valid age file of everything up to that chunk. A caller
whose data has units (a video's fragments) calls :meth:`Writer.mark` after
each whole one: the file then ends at the last mark on the disk instead, its
chunk sealed again cut at the mark (the writer keeps that chunk's plaintext
too, another 64 KiB at most).

Keys are forgotten as soon as they are not needed: the file key lives in a
``bytearray`` that is zeroed once the header and the payload key are made
(both in the constructor), and the payload key, derived straight into a
``bytearray`` (``HKDF.derive_into``), is zeroed when the file ends (``close``,
``abort``, ``discard``, a full disk): the writer then holds no key, cipher or
plaintext. OpenSSL clears its own copies (the cipher contexts) as they are
freed. So a recorder's memory holds the key of the clip being written only.
"""

import contextlib
import io
import os
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, cast

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from doorbell.errors import UsageError
from doorbell.vault.errors import DiskFullError
from doorbell.vault.header import FILE_KEY_SIZE, MAX_STANZAS, encode_header
from doorbell.vault.keys import Recipient, ScryptRecipient
from doorbell.vault.sink import AtomicFileSink, Sink, can_cut, is_disk_full
from doorbell.vault.stream import CHUNK_SIZE, NONCE_SIZE, ChunkCipher

if TYPE_CHECKING:
    from typing_extensions import Buffer  # collections.abc.Buffer from Python 3.12


def _random_key(size: int) -> bytearray:
    """``size`` random bytes read straight into a bytearray (no bytes object to linger)."""
    key = bytearray(size)
    with open("/dev/urandom", "rb", buffering=0) as source:
        if source.readinto(key) != size:
            raise OSError("/dev/urandom gave too few bytes")
    return key


def _payload_key_into(file_key: bytearray, nonce: bytes) -> bytearray:
    """age's payload key (``stream.payload_key``), derived into a bytearray that can be
    zeroed (``HKDF.derive_into``, cryptography 47 and later: hence pyproject's lower
    bound; through a bytes object a copy of the key lingers in the heap)."""
    key = bytearray(32)
    kdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=nonce, info=b"payload")
    kdf.derive_into(file_key, key)
    return key


def _wipe(key: bytearray | None) -> None:
    if key is not None:
        key[:] = bytes(len(key))  # in place: same length, no new buffer


class Writer(io.RawIOBase):
    """Encrypts everything written to it to ``recipients``, as one age v1 file.

    Not seekable: an age payload can only be written front to back, which is
    why clips are fragmented MP4. ``tell()`` counts plaintext bytes written.
    In a ``with`` block it closes on success and aborts on an exception (what
    was written stays, recoverable, as after a crash).
    """

    def __init__(self, sink: Sink, recipients: Sequence[Recipient]) -> None:
        super().__init__()
        if not recipients:
            raise UsageError("encrypting needs at least one recipient")
        if len(recipients) > MAX_STANZAS:  # readers (ours, and header.py's why) refuse more
            raise UsageError(f"at most {MAX_STANZAS} recipients, not {len(recipients)}")
        if len(recipients) > 1 and any(isinstance(r, ScryptRecipient) for r in recipients):
            raise UsageError("a passphrase cannot be combined with other recipients")
        self._sink = sink
        nonce = os.urandom(NONCE_SIZE)
        file_key = _random_key(FILE_KEY_SIZE)
        self._key: bytearray | None = None
        # cryptography takes any buffer where the vault's signatures say bytes: the keys
        # stay in bytearrays, never copied into bytes that could not be zeroed.
        try:
            key = cast(bytes, file_key)
            header = encode_header([r.wrap(key) for r in recipients], key)
            self._key = _payload_key_into(file_key, nonce)
        finally:
            _wipe(file_key)
        self._cipher: ChunkCipher | None = ChunkCipher(cast(bytes, self._key))
        self._buffer = bytearray()
        self._index = 0
        self._written = 0
        self._ended = False
        # Where the last sealed chunk starts in the file, and its plaintext: what
        # a full disk needs to end the file there (sinks that can truncate only).
        self._cuttable = sink if can_cut(sink) else None
        self._last: tuple[int, bytes] | None = None
        # Marks (see mark()): the one in the unsealed buffer (chunk index, bytes of it),
        # and the last one on the disk (where its chunk starts, its index, its plaintext).
        self._marked = False
        self._pending_mark: tuple[int, int] | None = None
        self._safe_mark: tuple[int, int, bytes] | None = None
        try:
            self._guarded(sink.write, header + nonce)
        except BaseException:
            self._forget()
            raise

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._written

    def flush(self) -> None:
        """Hand every sealed chunk to the OS. The unsealed tail (under 64 KiB) stays
        in RAM: sealing it early would end the stream."""
        if not self._ended:
            self._sink.flush()

    def mark(self) -> None:
        """Everything written so far is a whole unit (a video fragment): should the disk
        fill up, end the file here rather than inside a later unit. Once any mark is
        made, a full disk ends the file at the last mark whose chunk reached the disk,
        or removes the file if none did (``DiskFullError.kept`` 0). Costs nothing until
        the chunk holding the mark is sealed, then one copy of that chunk."""
        if self._ended or self._written == 0:
            return
        self._marked = True
        # The byte before the mark is always in the buffer: a full buffer is sealed
        # only when more data comes.
        self._pending_mark = (self._index, len(self._buffer))

    def write(self, data: "Buffer") -> int:
        if self._ended:
            raise ValueError("write to a closed vault writer")
        view = memoryview(data).cast("B")
        count = len(view)
        while view:
            # A full buffer is sealed only once more data arrives: until then
            # it might be the final chunk, and only close() knows.
            if len(self._buffer) == CHUNK_SIZE:
                self._seal(self._buffer)
                self._buffer.clear()
            if not self._buffer and len(view) > CHUNK_SIZE:
                self._seal(view[:CHUNK_SIZE])
                view = view[CHUNK_SIZE:]
                continue
            take = CHUNK_SIZE - len(self._buffer)
            self._buffer += view[:take]
            view = view[take:]
        self._written += count
        return count

    def _sealer(self) -> ChunkCipher:
        if self._cipher is None:
            raise ValueError("the vault writer has forgotten its key: the file is ended")
        return self._cipher

    def _seal(self, plaintext: bytes | bytearray | memoryview) -> None:
        sealed = self._sealer().seal(self._index, plaintext, last=False)
        cuttable = self._cuttable
        start = cuttable.size if cuttable is not None else 0
        self._guarded(self._sink.write, sealed)
        if cuttable is not None:
            self._last = (start, bytes(plaintext))
            mark = self._pending_mark
            if mark is not None and mark[0] == self._index:  # the mark is on the disk now
                self._safe_mark = (start, self._index, bytes(plaintext[: mark[1]]))
                self._pending_mark = None
        self._index += 1

    def _guarded(self, write: Callable[[bytes], None], data: bytes) -> None:
        try:
            write(data)
        except OSError as err:
            if not (self._cuttable is not None and is_disk_full(err)):
                raise
            self._end_at_last_chunk()

    def _end_at_last_chunk(self) -> None:
        """The disk is full: finish the file at its last whole chunk, or remove it."""
        self._ended = True
        self._buffer.clear()
        try:
            self._end_early()
        finally:
            self._forget()

    def _end_early(self) -> None:
        sink = self._cuttable
        assert sink is not None  # only a cuttable sink's disk-full error comes here
        path = getattr(sink, "path", "")
        if self._marked:
            end = self._safe_mark
            at_mark = True
        else:
            end = None if self._last is None else (self._last[0], self._index - 1, self._last[1])
            at_mark = False
        if end is None:
            sink.discard()
            raise DiskFullError(path, 0, at_mark)
        start, index, plaintext = end
        try:
            # Truncating at the chunk's start frees it and all after; its sealed final
            # version is no longer than it was, so it fits in the space just freed.
            sink.truncate(start)
            sink.write(self._sealer().seal(index, plaintext, last=True))
            sink.finish()
        except OSError:
            with contextlib.suppress(OSError):  # what is there stays, recoverable
                sink.abort()
            raise
        raise DiskFullError(path, index * CHUNK_SIZE + len(plaintext), at_mark)

    def close(self) -> None:
        """Write the final chunk and finish the file (for a file: fsync and rename)."""
        if not self._ended:
            try:
                sealed = self._sealer().seal(self._index, self._buffer, last=True)
                self._guarded(self._sink.write, sealed)  # a full disk ends it at the last chunk
                self._ended = True
                self._buffer.clear()
                try:
                    self._sink.finish()
                except BaseException:
                    with contextlib.suppress(OSError):  # the first error is the one to report
                        self._sink.abort()
                    raise
            finally:
                self._forget()
        super().close()

    def abort(self) -> None:
        """Stop without a final chunk: what a crash leaves, with its prefix recoverable."""
        self._stop(self._sink.abort)

    def discard(self) -> None:
        """Stop and delete what was written (the ``.part`` of a file)."""
        self._stop(self._sink.discard)

    def _stop(self, how: Callable[[], None]) -> None:
        if not self._ended:
            self._ended = True
            self._buffer.clear()
            try:
                how()
            finally:
                self._forget()
        super().close()

    def _forget(self) -> None:
        """Drop the cipher and zero the payload key; drop the plaintext held for a full
        disk. The writer can seal nothing after this."""
        self._cipher = None
        _wipe(self._key)
        self._key = None
        self._last = self._safe_mark = self._pending_mark = None
        self._buffer[:] = bytes(len(self._buffer))
        self._buffer.clear()

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def __del__(self) -> None:
        # Never finish a file nobody closed: that would mark a partial stream complete.
        if not getattr(self, "_ended", True):
            with contextlib.suppress(OSError):
                self.abort()


def create(
    path: str | os.PathLike[str],
    recipients: Sequence[Recipient],
    *,
    fsync_interval: float = 2.0,
    clock: Callable[[], float] = time.monotonic,
    durable: bool = True,
) -> Writer:
    """Open ``path`` for encrypted writing (as ``path.part`` until ``close()``).

    ``durable=False`` skips every fsync (for the command-line tool only).
    """
    sink = AtomicFileSink(path, fsync_interval, clock, durable=durable)
    try:
        return Writer(sink, recipients)
    except BaseException:
        sink.discard()
        raise
