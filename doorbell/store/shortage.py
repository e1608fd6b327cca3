"""A shortage of space: when it begins and ends, and which clips it keeps from deletion.

    shortage.begin("5f3a9c0e12d4b7a8", hold=True)  # True: a full disk cut this clip short
    shortage.clips()                                # frozenset({"5f3a9c0e12d4b7a8"})
    shortage.end()                                  # False: the recording goes on
    shortage.release()                              # its trigger stopped
    shortage.end()                                  # True: room again, the shortage is over

A shortage begins at the first full disk (the recorder calls
:meth:`ClipStore.short_of_space <doorbell.store.clips.ClipStore.short_of_space>`) or
the first prune that cannot reach ``min_free + need``, and ends at a prune that
finds ``min_free + CLIP_ROOM`` free once the recording that met it is over
(:meth:`Shortage.release`). The clips recorded during it (the one a full disk cut
short included) are never deleted by the space rules: what was recorded is not
deleted to make room for what is being recorded when nothing else may go, and a
long event's first clips are not deleted to make room for its last ones.

Bookkeeping only: the store measures the disk, runs retention and logs; this
class holds no file and reads no clock.
"""

from __future__ import annotations

import threading


class Shortage:
    """Whether the disk is short of space, and the clips recorded since it became so.

    Thread ownership: any thread may call any method; ``_lock`` guards ``_clips`` and
    ``_held`` and is never held while another lock is taken.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clips: set[str] | None = None  # None: there is room
        self._held = False  # a recording that met the shortage goes on

    def begin(self, clip_id: str | None = None, *, hold: bool = False) -> bool:
        """The disk is full or short: a shortage begins, if none is under way, and
        ``clip_id`` (if given) is kept from the space rules until it ends. ``hold``: a
        recording met it, and it lasts at least until :meth:`release`. True if this call
        began it."""
        with self._lock:
            began = self._clips is None
            if self._clips is None:
                self._clips = set()
            if clip_id is not None:
                self._clips.add(clip_id)
            self._held = self._held or hold
        return began

    def release(self) -> None:
        """The recording that met the shortage is over: the next :meth:`end` may end it."""
        with self._lock:
            self._held = False

    def recording_started(self, clip_id: str) -> None:
        """A clip began: kept from the space rules if a shortage is under way."""
        with self._lock:
            if self._clips is not None:
                self._clips.add(clip_id)

    def end(self) -> bool:
        """There is room again: the shortage ends unless none is under way or it is
        held. True if this call ended it."""
        with self._lock:
            if self._clips is None or self._held:
                return False
            self._clips = None
        return True

    def clips(self) -> frozenset[str]:
        """The ids of the clips recorded during the current shortage (empty when none)."""
        with self._lock:
            return frozenset(self._clips or ())
