"""Clips on disk: age files under ``clips/`` (named as :mod:`~doorbell.store.layout`
says) and their SQLite index (``index.sqlite3``: id, start, end, trigger, bytes, keep,
state). A clip being written is a :class:`~doorbell.store.recording.ClipRecording`.

Ids are random (16 hex digits): a file name tells nothing about when. The
store writes with recipients only and never decrypts (law 2): a clip's files
(video, thumbnail, fragment index) are served as ciphertext, found by
:meth:`ClipStore.path`, and decrypted by the owner. The index is a cache of
the files: what happens at open
(checked against them, rebuilt from them if missing or corrupt) is in
:mod:`~doorbell.store.startup`; the bookkeeping of a shortage of space, which
keeps the clips recorded during it from the space rules, in
:mod:`~doorbell.store.shortage`.
"""

from __future__ import annotations

import builtins
import contextlib
import logging
import os
import secrets
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

from doorbell import clock as clocks
from doorbell import vault
from doorbell.errors import DoorbellError
from doorbell.store import times
from doorbell.store.index import Clip, ClipFilters
from doorbell.store.keyring import Keyring
from doorbell.store.layout import CUT, ENCRYPTED, INDEX, KEEP, PART, THUMBNAIL, VIDEO, valid_id
from doorbell.store.recording import ClipRecording
from doorbell.store.retention import Plan, Rules, plan_retention
from doorbell.store.shortage import Shortage
from doorbell.store.startup import StartupReport, open_index, reconcile

if TYPE_CHECKING:
    from typing import Unpack

__all__ = ["CLIP_ROOM", "ClipNotFound", "ClipStore", "StartupReport", "StoreOptions"]

log = logging.getLogger(__name__)
CLIP_ROOM = 8 * vault.CHUNK_SIZE  # bytes free beyond min_free for a clip to begin (512 KiB)


class ClipNotFound(DoorbellError, KeyError):
    """No clip with that id in this store."""

    def __str__(self) -> str:
        return str(self.args[0])


class StoreOptions(TypedDict, total=False):
    """The keyword arguments of :class:`ClipStore`, for :meth:`ClipStore.open`."""

    fsync_interval: float
    clock: Callable[[], float]
    clock_state: Callable[[], clocks.ClockState]
    retention: Rules | None
    disk_free: Callable[[], int] | None


class ClipStore:
    """The clip files of one data dir, and their index."""

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        recipients: Callable[[], Sequence[vault.Recipient]],
        *,
        fsync_interval: float = 2.0,
        clock: Callable[[], float] = time.time,
        clock_state: Callable[[], clocks.ClockState] = clocks.read,
        retention: Rules | None = None,
        disk_free: Callable[[], int] | None = None,
    ) -> None:
        """``clock`` is the wall clock (Unix seconds); ``clock_state`` says whether it is
        synchronised, the boot and CLOCK_BOOTTIME (:func:`doorbell.clock.read`)."""
        self.data_dir = Path(data_dir)
        self.folder = self.data_dir / "clips"
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._recipients = recipients
        self._fsync_interval = fsync_interval
        self._clock = clock
        self._clock_state = clock_state
        self.retention = retention
        self._disk_free = disk_free or (lambda: shutil.disk_usage(self.folder).free)
        self._prune_lock = threading.Lock()
        self.last_prune: Plan | None = None
        self._active: set[str] = set()
        self._shortage = Shortage()  # its clips are never deleted by the space rules
        self._lock = threading.Lock()  # guards _active; the index and _shortage lock themselves
        self.index, rebuilt = open_index(self.data_dir, self.folder, clock)
        self.report: StartupReport = reconcile(self, rebuilt)

    @classmethod
    def open(cls, data_dir: str | os.PathLike[str], **options: Unpack[StoreOptions]) -> ClipStore:
        """The store of ``data_dir``, encrypting to ``keys/recipients.txt`` (re-read per clip)."""
        keyring = Keyring.in_data_dir(data_dir)
        keyring.recipients()  # fail now, with a clear message, if there are none
        return cls(data_dir, keyring.recipients, **options)

    def close(self) -> None:
        self.index.close()

    # -- paths -------------------------------------------------------------

    def path(self, clip_id: str, suffix: str) -> Path:
        """The file ``<id><suffix>`` of a clip (``VIDEO``, ``THUMBNAIL``, ``INDEX``... from
        :mod:`~doorbell.store.layout`), whether or not it exists. ClipNotFound if
        ``clip_id`` is not a clip id: no other string ever becomes a path."""
        if not valid_id(clip_id):
            raise ClipNotFound(f"{clip_id!r} is not a clip id")
        return self.folder / (clip_id + suffix)

    def _bytes(self, clip_id: str) -> int:
        """Bytes on the disk of a clip's encrypted files (video, thumbnail, fragment index;
        finished or being written)."""
        total = 0
        for suffix in (*ENCRYPTED, *(s + PART for s in ENCRYPTED)):
            with contextlib.suppress(FileNotFoundError):
                total += self.path(clip_id, suffix).stat().st_size
        return total

    # -- writing -----------------------------------------------------------

    def new_clip(
        self, trigger: str, start: float | None = None, follows: str | None = None
    ) -> ClipRecording:
        """Start a clip (retention runs first): returns its recording, whose ``video``
        takes the MP4 bytes. ``follows``: the clip this one continues (the same visit:
        a bell that ended a motion clip), which the space rules never delete to make
        room for this one; if nothing else may go, it joins the shortage."""
        recipients = list(self._recipients())
        self.prune(protect=(follows,) if follows else ())
        clip_id = secrets.token_hex(8)
        clock, now = self._clock_state(), self._clock()
        start = now if start is None else start
        fields = times.new_clip_fields(start, now, clock)
        row = Clip(clip_id, start, None, trigger, 0, False, "recording", *fields)
        self.index.put(row)
        with self._lock:
            self._active.add(clip_id)
        return ClipRecording(self, clip_id, start, trigger, recipients)

    def _create(self, clip_id: str, suffix: str, recipients: list) -> vault.Writer:
        return vault.create(
            self.path(clip_id, suffix), recipients, fsync_interval=self._fsync_interval
        )

    def _finished(self, clip: Clip) -> Clip:
        """Record the end of a clip's recording; returns its row (with its time fields)."""
        try:
            clip = self._with_times(clip)
            self.index.put(clip)
        except OSError as err:  # StoreFullError, or a read-only or failing disk
            # The files are as they are; the next start finds the row stale and fixes it.
            log.warning("index: clip %s not recorded as %s: %s", clip.id, clip.state, err)
        finally:
            with self._lock:
                self._active.discard(clip.id)
        return clip

    def _with_times(self, clip: Clip) -> Clip:
        """``clip`` as its recording finished it, with its row's time fields."""
        row = self.index.get(clip.id)
        if row is None:
            return clip
        clock = self._clock_state()  # then the wall clock at once: a matching pair
        return times.finished(clip, row, self._clock(), clock)

    def correct_times(self) -> builtins.list[str]:
        """Once the clock is synchronised, give each time-uncertain clip of this boot its
        true times (:func:`~doorbell.store.times.corrections`), the mtimes of its files too
        (a rebuilt index reads them), and mark it certain. Returns the ids corrected: none
        while the clock is not synchronised. A clip being recorded waits for the next
        call; clips of an earlier boot stay uncertain for good."""
        with self._lock:
            busy = set(self._active)
        done = []
        found = self.index.uncertain()
        clock = self._clock_state()  # then the wall clock at once: a matching pair
        for fix in times.corrections(found, self._clock(), clock, busy):
            if not self.index.set_times(fix.clip_id, fix.start, fix.end):
                continue  # deleted or corrected meanwhile
            self._correct_mtimes(fix)
            done.append(fix.clip_id)
        if done:
            log.info("clock synchronised: the times of %d clip(s) corrected", len(done))
        return done

    def _correct_mtimes(self, fix: times.Correction) -> None:
        """The mtimes a rebuilt index reads: thumbnail = start, video = end, an unfinished
        file moved by the shift. Once a clip: its row is marked certain first, so a crash
        here leaves stale mtimes, never doubly moved ones."""
        for suffix, when in ((THUMBNAIL, fix.start), (VIDEO, fix.end)):
            with contextlib.suppress(FileNotFoundError):
                if when is not None:
                    os.utime(self.path(fix.clip_id, suffix), (when, when))
        for suffix in (THUMBNAIL + PART, VIDEO + PART):
            path = self.path(fix.clip_id, suffix)
            with contextlib.suppress(FileNotFoundError):
                mtime = path.stat().st_mtime_ns + round(fix.shift * 1e9)
                os.utime(path, ns=(mtime, mtime))

    # -- reading -----------------------------------------------------------

    def get(self, clip_id: str) -> Clip:
        clip = self.index.get(clip_id) if valid_id(clip_id) else None
        if clip is None or (clip.state == "recording" and clip_id not in self._active):
            raise ClipNotFound(f"no clip {clip_id!r}")
        return clip

    def list(self, **filters: Unpack[ClipFilters]) -> list[Clip]:
        """Finished and partial clips, newest first (filters as ``Index.list``)."""
        return self.index.list(**filters)

    # -- owner's changes ---------------------------------------------------

    def set_keep(self, clip_id: str, keep: bool) -> Clip:
        clip = self.get(clip_id)
        marker = self.path(clip_id, KEEP)
        if keep:
            marker.touch()
        else:
            marker.unlink(missing_ok=True)
        clip = replace(clip, keep=keep)
        self.index.put(clip)
        return clip

    def delete(self, clip_id: str) -> None:
        """Remove a clip's files, its video last, then its row (a crash between leaves
        nothing behind: the next start removes what is left of a clip without a video)."""
        self.get(clip_id)
        for suffix in (THUMBNAIL, INDEX, KEEP, *(s + PART for s in ENCRYPTED), VIDEO, CUT):
            self.path(clip_id, suffix).unlink(missing_ok=True)
        self.index.remove(clip_id)

    def prune(self, need: int = 0, protect: Sequence[str] = ()) -> Plan | None:
        """Apply the retention rules (if any): delete the oldest unkept clips that
        are too old or over the quota, or while the disk has less than
        ``min_free + need`` free. Clips being recorded and kept clips stay; so do, from
        the space rules, the clips of a shortage under way and the ids in ``protect``
        (which join the shortage if this prune finds the disk short)."""
        if self.retention is None:
            return None
        with self._prune_lock:
            free = self._disk_free()
            held = self._shortage.clips() | frozenset(protect)
            plan = plan_retention(
                self.list(),
                now=self._clock(),
                free=free,
                rules=self.retention,
                need=need,
                clock=self._clock_state(),
                protect=held,
            )
            for clip_id in plan.delete:
                with contextlib.suppress(ClipNotFound):  # the owner deleted it meanwhile
                    self.delete(clip_id)
            if plan.delete:
                log.info("retention deleted %d clip(s), %d bytes", len(plan.delete), plan.freed)
            if plan.warning and (
                self.last_prune is None or self.last_prune.warning != plan.warning
            ):
                log.warning("retention: %s", plan.warning)
            self.last_prune = plan
            after = free + plan.freed
            if after < self.retention.min_free + need:
                self.short_of_space()
                for clip_id in protect:
                    self.short_of_space(clip_id)
            elif after >= self.retention.min_free + max(need, CLIP_ROOM) and self._shortage.end():
                log.info("disk has room again: every unkept clip is under the retention rules")
            return plan

    # -- space (see doorbell.store.shortage) --------------------------------

    def short_of_space(self, clip_id: str | None = None, *, hold: bool = False) -> None:
        """The disk is full or short: a shortage begins (if none is under way); the
        clip ``clip_id`` (say, the one a full disk cut short) is kept from the space
        rules until it ends, as is every clip started meanwhile. ``hold``: a recording
        met it, and it lasts at least until :meth:`release_shortage`."""
        if self._shortage.begin(clip_id, hold=hold):
            log.info("disk short of space: clips recorded from now on are kept from deletion")

    def release_shortage(self) -> None:
        """The recording that met the shortage is over (its trigger stopped): the next
        prune that finds room ends the shortage."""
        self._shortage.release()

    def _recording_started(self, clip_id: str) -> None:
        self._shortage.recording_started(clip_id)

    def has_room(self, need: int = 0) -> bool:
        """Whether the disk has room for a clip to begin: ``CLIP_ROOM + need`` bytes free
        (one statvfs). ``min_free`` is retention's target, not a limit: when nothing else
        may go, clips are recorded into it."""
        return self._disk_free() >= CLIP_ROOM + need

    def space_held(self) -> tuple[int, int]:
        """Bytes no rule may delete for space: (kept clips, clips recorded during the
        current shortage and not kept)."""
        recent = self._shortage.clips()
        clips = self.list()
        kept = sum(c.bytes for c in clips if c.keep)
        return kept, sum(c.bytes for c in clips if not c.keep and c.id in recent)

    def writable(self) -> OSError | None:
        """Why clips cannot be written now, or None: a probe (an empty file, created
        and removed in the clip folder, which is made again if it went) and a write
        lock on the index. No byte of any clip is written."""
        probe = self.folder / ".write-probe"
        try:
            self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600))
            probe.unlink()
            self.index.check_writable()
        except OSError as err:
            return err
        return None
