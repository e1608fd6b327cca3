"""A clip being recorded: its encrypted files as they are written, and how it ends.

    recording = store.new_clip("bell", start=t)
    recording.write_thumbnail(jpeg)
    recording.video.write(mp4_bytes)       # the muxer writes here, chunk by chunk
    clip = recording.finish(end=t2)        # final chunk, fsync, rename, fragment index, row

It ends one of four ways: ``finish`` (a whole clip), ``cut_short`` (a full
disk ended the file at its last whole fragment), ``abort`` (kept as a crash
would leave it: its video as it is, without a final chunk, state "partial")
or ``discard`` (it could not even begin).

``video`` marks each whole MP4 fragment in the vault writer as it goes by
(:class:`ClipVideo`), so a full disk ends the file at a fragment, never
inside one, and a clip with no whole fragment leaves no file at all. It also
notes where each keyframe's fragment starts: a finished clip gets its
fragment index, ``<id>.idx.age`` (:mod:`~doorbell.store.fragment_index`),
encrypted to the clip's recipients, for seeking in the owner's browser.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

from doorbell import vault
from doorbell.store.fragment_index import KEPT_BOXES, FragmentIndex
from doorbell.store.fragments import FragmentScanner
from doorbell.store.index import Clip
from doorbell.store.layout import INDEX, PART, THUMBNAIL, VIDEO
from doorbell.store.startup import keep_cut

if TYPE_CHECKING:
    from typing_extensions import Buffer  # collections.abc.Buffer from Python 3.12

    from doorbell.store.clips import ClipStore

log = logging.getLogger(__name__)


class ClipVideo(io.RawIOBase):
    """The clip's MP4 on its way into its vault writer: write-only, not seekable.

    Each whole fragment (``moof`` + ``mdat``, found by a
    :class:`~doorbell.store.fragments.FragmentScanner` reading box headers,
    and the small ``moov`` and ``moof`` boxes whole) is marked in the writer
    (``vault.Writer.mark``) and its keyframe, if it starts with one, noted in
    ``index``. Otherwise it is the writer: ``close`` finishes the file,
    ``abort`` leaves it as a crash would, ``discard`` removes it. ``size``: the
    plaintext bytes in the file (fewer than written when a full disk ended it).
    """

    def __init__(self, writer: vault.Writer) -> None:
        super().__init__()
        self.writer = writer
        self.index = FragmentIndex()
        self._scanner = FragmentScanner(keep=KEPT_BOXES)
        self._kept: int | None = None  # plaintext bytes a full disk left in the file

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.writer.tell()

    @property
    def size(self) -> int:
        return self.writer.tell() if self._kept is None else self._kept

    def write(self, data: Buffer) -> int:
        view = memoryview(data).cast("B")
        base = self._scanner.offset
        done = 0
        ends = self._scanner.feed(view)
        for box in self._scanner.take_boxes():
            self.index.add(*box)
        with self._noting_a_full_disk():
            for end in ends:
                self.writer.write(view[done : end - base])
                self.writer.mark()
                done = end - base
            if done < len(view):
                self.writer.write(view[done:])
        return len(view)

    @contextlib.contextmanager
    def _noting_a_full_disk(self) -> Iterator[None]:
        try:
            yield
        except vault.DiskFullError as err:  # the writer ended the file at a mark
            self._kept = err.kept
            raise

    def flush(self) -> None:
        if not self.closed:
            self.writer.flush()

    def close(self) -> None:
        if not self.closed:
            with self._noting_a_full_disk():
                self.writer.close()
        super().close()

    def abort(self) -> None:
        self.writer.abort()
        super().close()

    def discard(self) -> None:
        self.writer.discard()
        super().close()


class ClipRecording:
    """A clip being recorded. ``video`` is a write-only file object for the muxer.

    Thread ownership: the recording thread alone calls ``video.write``,
    ``write_thumbnail``, ``finish`` and ``abort``.
    """

    def __init__(
        self, store: ClipStore, clip_id: str, start: float, trigger: str, recipients: list
    ) -> None:
        self.store = store
        self.id = clip_id
        self.start = start
        self.trigger = trigger
        self._recipients = recipients
        try:
            self.video = ClipVideo(store._create(clip_id, VIDEO, recipients))
        except BaseException:  # no file could be made (a read-only or full disk): no clip
            with store._lock:
                store._active.discard(clip_id)
            with contextlib.suppress(OSError):  # the index may be as unwritable
                store.index.remove(clip_id)
            raise
        store._recording_started(clip_id)

    def write_thumbnail(self, jpeg: bytes) -> None:
        """Encrypt and store the clip's thumbnail (a JPEG held in memory)."""
        with self.store._create(self.id, THUMBNAIL, self._recipients) as thumb:
            thumb.write(jpeg)

    def finish(self, end: float | None = None) -> Clip:
        """Seal the clip: final chunk, fsync, rename, fragment index, index row. Returns
        the row. A fragment index that cannot be written is logged, not raised: the clip
        plays without it (from its start)."""
        end = self.store._clock() if end is None else end
        self.video.close()
        self._write_index()
        thumb = self.store.path(self.id, THUMBNAIL)
        if thumb.exists():
            os.utime(thumb, (self.start, self.start))
        os.utime(self.store.path(self.id, VIDEO), (end, end))
        clip = Clip(
            self.id, self.start, end, self.trigger, self.store._bytes(self.id), False, "complete"
        )
        return self.store._finished(clip)

    def _write_index(self) -> None:
        """``<id>.idx.age``, encrypted to the clip's recipients, if its video is an MP4."""
        data = self.video.index.encode(self.video.size)
        if self.video.index.problem:
            log.warning("clip %s: fragment index: %s", self.id, self.video.index.problem)
        if data is None:
            return
        try:
            writer = self.store._create(self.id, INDEX, self._recipients)
        except OSError as err:
            log.warning("clip %s has no fragment index: %s", self.id, err)
            return
        try:
            writer.write(data)
            writer.close()
        except OSError as err:  # a full disk removed it already; anything else: remove it
            with contextlib.suppress(OSError):
                writer.discard()
            log.warning("clip %s has no fragment index: %s", self.id, err)

    def cut_short(self, end: float) -> Clip | None:
        """After a full disk stopped the writer (``vault.DiskFullError``, which already
        ended the file at its last whole fragment, or removed it when no fragment was
        whole): record what is there. None: nothing of the clip was kept."""
        with contextlib.suppress(OSError):
            self.video.abort()  # a no-op when the writer already ended the file
        video = self.store.path(self.id, VIDEO)
        if video.exists():
            return self.finish(end)
        if self.store.path(self.id, VIDEO + PART).exists():  # kept as a crash leaves it
            return self.abort()
        self.discard()
        return None

    def discard(self) -> None:
        """Remove every trace of this clip (it could not even begin: the disk is full)."""
        with contextlib.suppress(OSError):
            self.video.discard()
        for suffix in (VIDEO, VIDEO + PART, THUMBNAIL, THUMBNAIL + PART, INDEX, INDEX + PART):
            self.store.path(self.id, suffix).unlink(missing_ok=True)
        with self.store._lock:
            self.store._active.discard(self.id)
        with contextlib.suppress(
            Exception
        ):  # sqlite may be out of space too: the next start tidies up
            self.store.index.remove(self.id)

    def abort(self) -> Clip | None:
        """Stop without finishing: the clip is kept as a crash would leave it, its video
        renamed into place as it is, without a final chunk
        (:func:`~doorbell.store.startup.keep_cut`), state "partial", its end the file's
        mtime. Nothing is decrypted: the owner's browser plays it to its last whole
        fragment, ``doorbell decrypt --recover`` gives it back. None: nothing of it can
        ever play (its file ends in its age header): it is discarded. On a failing disk
        as best it can: what reached the disk stays, and what cannot be renamed now is
        at the next start."""
        try:
            self.video.abort()
        except OSError as err:  # the last fsync failed: the disk keeps what it kept
            log.warning("clip %s left partial; its file could not be synced: %s", self.id, err)
        end = None
        try:
            why = keep_cut(self.store, self.id)
            if why is None:
                end = self.store.path(self.id, VIDEO).stat().st_mtime
        except OSError as err:
            why = None
            log.warning("clip %s left partial as %s: %s", self.id, VIDEO + PART, err)
        if why is not None:
            log.warning("clip %s removed: %s, so nothing in it can play", self.id, why)
            self.discard()
            return None
        clip = Clip(
            self.id, self.start, end, self.trigger, self.store._bytes(self.id), False, "partial"
        )
        return self.store._finished(clip)
