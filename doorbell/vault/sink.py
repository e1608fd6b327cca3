"""Sinks: where a vault writer's sealed bytes go, and how they are made durable.

    sink = AtomicFileSink("clips/abc.mp4.age")   # writes clips/abc.mp4.age.part
    sink.write(sealed); ...; sink.finish()        # fsync, rename, fsync the folder

:class:`StreamSink` hands bytes to an open binary stream (standard output, a
socket file). :class:`AtomicFileSink` writes ``<name>.part`` and renames it into
place only when finished, fsyncing every ``fsync_interval`` seconds or
``fsync_bytes`` bytes in a helper thread, so a power cut loses at most that much
and never leaves a half-written file under the final name. It can also cut its
file back (:class:`CuttableSink`), which the writer needs to end a file cleanly
on a full disk (:func:`is_disk_full`).
"""

import contextlib
import errno
import os
import threading
import time
from collections.abc import Callable
from typing import Protocol, TypeGuard

from doorbell.vault.errors import UnfinishedFileError

PART_SUFFIX = ".part"
FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


def is_disk_full(err: BaseException) -> bool:
    """A write failed because the disk (or the user's quota) is full."""
    return isinstance(err, OSError) and err.errno in FULL_ERRNOS


class Sink(Protocol):
    """Where sealed bytes go.

    ``finish`` after the final chunk; ``abort`` stops and keeps what was
    written (as a crash would); ``discard`` stops and removes it where it can.
    """

    def write(self, data: bytes) -> None: ...
    def flush(self) -> None: ...
    def finish(self) -> None: ...
    def abort(self) -> None: ...
    def discard(self) -> None: ...


class CuttableSink(Sink, Protocol):
    """A sink that can cut its file back, which a full disk needs (:class:`AtomicFileSink`)."""

    size: int

    def truncate(self, size: int) -> None: ...


def can_cut(sink: Sink) -> TypeGuard[CuttableSink]:
    """Whether ``sink`` can cut its file back (a file can; a stream cannot)."""
    return hasattr(sink, "truncate")


class BinaryStream(Protocol):
    """What :class:`StreamSink` writes to: any binary file object."""

    def write(self, data: bytes, /) -> object: ...
    def flush(self) -> object: ...


class StreamSink:
    """Sealed bytes to an open binary stream (standard output, a socket file)."""

    def __init__(self, stream: BinaryStream) -> None:
        self._stream = stream

    def write(self, data: bytes) -> None:
        self._stream.write(data)

    def flush(self) -> None:
        self._stream.flush()

    def finish(self) -> None:
        self._stream.flush()

    def abort(self) -> None:
        self._stream.flush()

    def discard(self) -> None:
        self._stream.flush()


class AtomicFileSink:
    """Sealed bytes to ``<path>.part``, renamed to ``path`` when finished.

    Every write goes straight to the OS from the caller's thread. When
    ``durable``, an fsync starts once ``fsync_interval`` seconds of ``clock`` or
    ``fsync_bytes`` bytes have passed since the last one, and always runs before
    the rename; otherwise never (the command-line tool, like ``age`` and ``cp``,
    leaves that to the OS).

    The periodic fsync runs in a helper thread: on an SD card one can take
    hundreds of milliseconds, and the recorder must keep taking frames; for a
    bulk write it keeps the disk busy while the CPU encrypts. Thread ownership:
    the caller owns ``_fd`` and every method; the sync thread only calls
    ``os.fsync(_fd)`` between ``_start_sync`` and ``_idle.set()``, and the fd is
    never closed while a sync is in flight (``_close`` waits for it).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        fsync_interval: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        *,
        fsync_bytes: int = 4 << 20,
        durable: bool = True,
    ) -> None:
        self.path = os.fspath(path)
        self.part = self.path + PART_SUFFIX
        self._interval = fsync_interval
        self._clock = clock
        self._sync_bytes = fsync_bytes
        self._durable = durable
        self._unsynced = 0
        self.size = 0  # bytes in the file, as far as writes succeeded
        self._error: OSError | None = None
        self._idle = threading.Event()
        self._idle.set()
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        try:
            self._fd: int | None = os.open(self.part, flags, 0o600)
        except FileExistsError:
            raise UnfinishedFileError(
                "an earlier write left it; recover or remove it first", self.part
            ) from None
        self._synced_at = clock()
        if durable:
            _fsync_dir(self.part)  # the .part itself survives a power cut

    def write(self, data: bytes) -> None:
        assert self._fd is not None
        self._raise_sync_error()
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            self.size += written
            view = view[written:]
        if not self._durable:
            return
        self._unsynced += len(data)
        now = self._clock()
        due = self._unsynced >= self._sync_bytes or now - self._synced_at >= self._interval
        if due and self._idle.is_set():  # one sync in flight at most
            self._synced_at = now
            self._unsynced = 0
            self._start_sync()

    def _start_sync(self) -> None:
        self._idle.clear()
        threading.Thread(target=self._sync, args=(self._fd,), name="vault-fsync").start()

    def _sync(self, fd: int) -> None:
        try:
            os.fsync(fd)
        except OSError as err:  # handed to the writer at its next call, not swallowed
            self._error = err
        finally:
            self._idle.set()

    def wait_synced(self) -> None:
        """Wait for the fsync in flight, if any; raise what it raised."""
        self._idle.wait()
        self._raise_sync_error()

    def _raise_sync_error(self) -> None:
        if self._error is not None:
            err, self._error = self._error, None
            raise err

    def sync(self) -> None:
        """Make every byte written so far durable, now."""
        self.wait_synced()
        if self._fd is not None:
            os.fsync(self._fd)

    def flush(self) -> None:
        """Nothing to do: every write already went to the OS."""

    def truncate(self, size: int) -> None:
        """Cut the file back to ``size`` bytes (to rewrite its last chunk)."""
        assert self._fd is not None
        os.ftruncate(self._fd, size)
        os.lseek(self._fd, size, os.SEEK_SET)  # the next write goes there, not past a hole
        self.size = size

    def finish(self) -> None:
        assert self._fd is not None
        if self._durable:
            self.sync()
        self._close()
        os.replace(self.part, self.path)
        if self._durable:
            _fsync_dir(self.path)

    def abort(self) -> None:
        """Stop writing and leave ``.part`` as a power cut would. The descriptor is closed
        even if the last fsync fails (a failing disk): that error is raised after."""
        if self._fd is not None:
            try:
                if self._durable:
                    self.sync()
            finally:
                self._close()

    def discard(self) -> None:
        self._close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.part)

    def _close(self) -> None:
        self._idle.wait()
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)


def _fsync_dir(file: str) -> None:
    """fsync the folder holding ``file``, so its entry survives a power cut."""
    fd = os.open(
        os.path.dirname(os.path.abspath(file)), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
    )
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
