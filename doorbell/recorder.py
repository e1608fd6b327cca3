"""Clips from encoded packets: a pre-roll ring buffer in RAM, and the clip lifecycle.

The encoder runs all the time; its packets go into :class:`PacketRing`, which
keeps the last seconds (whole groups of pictures, so it always starts at a
keyframe). When the trigger says Start, the :class:`Recorder` opens a clip in
the store, muxes the ring's packets from the keyframe at or before the
pre-roll's start into fragmented MP4 straight into the vault writer, then
every new packet until Stop. Plaintext exists only in RAM (law 1); the
recorder holds recipients only, through the store (law 2).

A full disk does not stop the doorbell: the vault ends the clip's file at its
last whole chunk (``vault.DiskFullError``), the clip is closed with what it
has, retention deletes the oldest unkept clips to make room, and recording
goes on in a new clip with its own pre-roll, which overlaps what the cut clip
lost (its chunk in flight). If nothing can be deleted, the
recorder says so (``disk_full``) and tries again at the next trigger.

Thread ownership: one thread (the camera's) calls ``add`` and ``apply``; the
``on_clip`` callback ("started" with the trigger, "finished" with the Clip)
runs on that thread and must hand over to the event loop itself
(``loop.call_soon_threadsafe``).
"""

import collections
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from doorbell.camera.frame import EncodedPacket, StreamInfo
from doorbell.codec import Mp4Writer
from doorbell.store import Clip, ClipRecording, ClipStore
from doorbell.trigger import Action, Start, Stop, Trigger
from doorbell.vault import CHUNK_SIZE, is_disk_full

log = logging.getLogger(__name__)
RESUME_ROOM = 8 * CHUNK_SIZE  # free space retention makes when a full disk cuts a clip short


def out_of_space(err: BaseException) -> bool:
    """A write failed for want of space: the vault's ``DiskFullError``, the store's
    ``StoreFullError`` (its index) and any other ENOSPC/EDQUOT from the disk all carry
    that errno, so the kind is read from it, never from a message."""
    return is_disk_full(err)


class PacketRing:
    """The last ``seconds`` of encoded video, trimmed a whole GOP at a time."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._packets: collections.deque[EncodedPacket] = collections.deque()

    def __len__(self) -> int:
        return len(self._packets)

    def add(self, packet: EncodedPacket) -> None:
        self._packets.append(packet)
        horizon = packet.at - self.seconds
        # Drop the oldest GOP while the next one still starts at or before the horizon.
        while True:
            second_key = next(
                (i for i, p in enumerate(self._packets) if i > 0 and p.keyframe), None
            )
            if second_key is None or self._packets[second_key].at > horizon:
                return
            for _ in range(second_key):
                self._packets.popleft()

    def since(self, at: float) -> list[EncodedPacket]:
        """Packets from the last keyframe at or before ``at`` (or the first keyframe held)."""
        packets = list(self._packets)
        keys = [i for i, p in enumerate(packets) if p.keyframe]
        if not keys:
            return []
        start = max((i for i in keys if packets[i].at <= at), default=keys[0])
        return packets[start:]


@dataclass
class _Open:
    recording: ClipRecording
    mp4: Mp4Writer
    trigger_at: float
    trigger: Trigger  # what started it (the store keeps it as a plain string)


@dataclass(frozen=True)
class Recorded:
    """A finished clip and its times in video seconds (first frame, last frame, trigger)."""

    clip: Clip
    start_at: float
    end_at: float
    trigger_at: float


class Recorder:
    """Carries out the trigger's Start and Stop on the packet stream."""

    def __init__(
        self,
        store: ClipStore,
        info: StreamInfo,
        *,
        pre_roll: float,
        wall_time: Callable[[float], float],
        thumbnail: Callable[[], bytes | None] = lambda: None,
        on_clip: Callable[[str, object], None] = lambda kind, clip: None,
    ) -> None:
        self.store = store
        self.info = info
        self.ring = PacketRing(pre_roll + 2.0)  # a keyframe interval of slack
        self._wall = wall_time
        self._thumbnail = thumbnail
        self._on_clip = on_clip
        self._open: _Open | None = None
        self.finished: list[Recorded] = []
        self.disk_full = False  # the last attempt to write found no room, even after retention

    @property
    def recording(self) -> bool:
        return self._open is not None

    def add(self, packets: Iterable[EncodedPacket]) -> None:
        for packet in packets:
            self.ring.add(packet)
            if self._open is not None:
                try:
                    self._open.mp4.write(packet)
                except Exception as err:
                    if not out_of_space(err):
                        raise
                    self._cut_short(packet.at)

    def apply(self, actions: Iterable[Action]) -> None:
        for action in actions:
            if isinstance(action, Start):
                self._start_with_room(action)
            elif isinstance(action, Stop):
                self.stop(action.at)

    def _start_with_room(self, action: Start, trigger_at: float | None = None) -> None:
        """Start a clip; if the disk is full, free room by retention and try once more."""
        for attempt in (1, 2):
            try:
                self._start(action, trigger_at)
                self.disk_full = False
                return
            except Exception as err:
                if not out_of_space(err):
                    raise
                if attempt == 1:
                    self.store.prune(need=RESUME_ROOM)
        self.disk_full = True
        log.error("disk full and no unkept clip left to delete: not recording until there is room")

    def _cut_short(self, at: float) -> None:
        """The disk filled up mid-clip: close the clip with what reached the disk,
        let retention make room, and go on recording in a new clip."""
        current, self._open = self._open, None
        assert current is not None
        log.warning(
            "disk full: clip %s ended at its last whole chunk; freeing room", current.recording.id
        )
        last = current.mp4.last_at if current.mp4.last_at is not None else at
        clip = self._salvage(current, last)
        if clip is not None:
            self._recorded(current, clip, last)
        # The new clip has its own pre-roll: it overlaps what the cut clip lost (its last
        # chunk in flight, the muxer's buffer), so no moment goes unrecorded.
        since = at - max(self.ring.seconds - 2.0, 1.0)
        again = Start(at=at, since=since, trigger=current.trigger)
        self._start_with_room(again, trigger_at=current.trigger_at)

    def _salvage(self, current: _Open, last: float) -> Clip | None:
        """A full disk stopped the clip's writer, which ended the file at its last whole
        chunk: make room first (the index needs some to record the clip), then record
        what reached the disk. None if nothing did."""
        current.mp4.abandon()
        self.store.prune(need=RESUME_ROOM)
        return current.recording.cut_short(end=self._wall(last))

    def _recorded(self, current: _Open, clip: Clip, last: float) -> Recorded:
        first = current.mp4.first_at if current.mp4.first_at is not None else last
        recorded = Recorded(clip, first, last, current.trigger_at)
        self.finished.append(recorded)
        self._on_clip("finished", clip)
        return recorded

    def _start(self, action: Start, trigger_at: float | None = None) -> None:
        if self._open is not None:
            self.stop(action.at)
        backlog = self.ring.since(action.since)
        if not backlog:
            log.warning("no keyframe in the buffer yet; the clip starts with the next one")
        start_at = backlog[0].at if backlog else action.at
        recording = self.store.new_clip(action.trigger, start=self._wall(start_at))
        try:
            jpeg = self._thumbnail()
            if jpeg:
                recording.write_thumbnail(jpeg)
            mp4 = Mp4Writer(recording.video, self.info)
            for packet in backlog:
                mp4.write(packet)
        except BaseException as err:
            if out_of_space(err):
                recording.discard()  # a clip that could not begin leaves nothing behind
            else:
                recording.abort()
            raise
        self._open = _Open(
            recording, mp4, action.at if trigger_at is None else trigger_at, action.trigger
        )
        self._on_clip("started", action.trigger)

    def stop(self, at: float) -> Recorded | None:
        """Finish the clip being recorded (if any) with its last packet so far."""
        if self._open is None:
            return None
        current, self._open = self._open, None
        last = current.mp4.last_at if current.mp4.last_at is not None else at
        try:
            current.mp4.close()
            clip: Clip | None = current.recording.finish(end=self._wall(last))  # final chunk
        except Exception as err:
            if not out_of_space(err):
                current.recording.abort()
                raise
            clip = self._salvage(current, last)
        return None if clip is None else self._recorded(current, clip, last)
