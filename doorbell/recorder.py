"""Clips from encoded packets: a pre-roll ring buffer in RAM, and the clip lifecycle.

The encoder runs all the time; its packets go into :class:`PacketRing`, which
keeps the last seconds (whole groups of pictures, so it always starts at a
keyframe). When the trigger says Start, the :class:`Recorder` opens a clip in
the store, muxes the ring's packets from the keyframe at or before the
pre-roll's start into fragmented MP4 straight into the vault writer, then
every new packet until Stop. Plaintext exists only in RAM (law 1); the
recorder holds recipients only, through the store (law 2).

A full disk: the vault ends the clip's file at its last whole fragment
(``vault.DiskFullError``), the clip is closed with what it has and kept from
the space rules (``ClipStore.short_of_space``), and retention deletes the
oldest other unkept clips to make room. If that made room, recording goes on
in a new clip with its own pre-roll, which overlaps what the cut clip lost.
If not, what was recorded is never deleted to make room for what is being
recorded: recording stops, :attr:`Recorder.fault` says why in one line, and
it resumes by itself once the disk has room (looked at every
:data:`RETRY_SECONDS` of camera time, one statvfs).

A read-only, failing or vanished data folder (EROFS, EIO, EACCES …, SQLite's
own errors mapped to those by the index) is a storage fault, not a camera
error: the clip being recorded is kept as a crash leaves it (cut short),
:attr:`Recorder.fault` says so, frames keep coming into the pre-roll ring,
and recording resumes by itself once the folder takes writes again.

Thread ownership: one thread (the camera's) calls ``add``, ``apply`` and
``stop``; the ``on_clip`` callback ("started" with the trigger, "finished"
with the Clip) runs on that thread and must hand over to the event loop
itself (``loop.call_soon_threadsafe``). ``fault`` is written by that thread
and read by others as a plain value.
"""

import collections
import contextlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from doorbell.camera.frame import EncodedPacket, StreamInfo
from doorbell.codec import Mp4Writer
from doorbell.faults import disk_full_fault, out_of_space, storage_failure, storage_fault
from doorbell.store import Clip, ClipRecording, ClipStore
from doorbell.store.clips import CLIP_ROOM
from doorbell.trigger import Action, Start, Stop, Trigger

log = logging.getLogger(__name__)
RETRY_SECONDS = 5.0  # camera seconds between looks for room, or a writable folder, while stopped
DISK_FULL, STORAGE = "disk full", "storage fault"


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
    start_at: float  # the camera time of the clip's start (its first packet's)
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
    """Carries out the trigger's Start and Stop on the packet stream.

    ``fault`` is None while recording works, else one line for the status page, the
    journal and systemd's STATUS= (:func:`disk_full_fault`, :func:`storage_fault`).
    """

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
        self.pre_roll = pre_roll
        self.ring = PacketRing(pre_roll + 2.0)  # a keyframe interval of slack
        self._wall = wall_time
        self._thumbnail = thumbnail
        self._on_clip = on_clip
        self._open: _Open | None = None
        self.finished: list[Recorded] = []
        self.fault: str | None = None
        self._fault_kind: str | None = None  # DISK_FULL or STORAGE while stopped
        self._retry_at = float("-inf")
        self._wanted: Start | None = None  # the trigger's clip, from its Start to its Stop

    @property
    def recording(self) -> bool:
        return self._open is not None

    @property
    def clip_id(self) -> str | None:
        """The id of the clip being recorded (None between clips). On the recording thread,
        as ``on_clip("started", trigger)`` is called, it is the new clip's."""
        return self._open.recording.id if self._open is not None else None

    @property
    def disk_full(self) -> bool:
        """Stopped because the disk is full of clips no rule may delete."""
        return self._fault_kind == DISK_FULL

    # -- the camera thread's calls ---------------------------------------------------------

    def add(self, packets: Iterable[EncodedPacket]) -> None:
        for packet in packets:
            self.ring.add(packet)
            try:
                self._take(packet)
            except Exception as err:
                if not self._stopped_by(err, packet.at):
                    raise

    def apply(self, actions: Iterable[Action]) -> None:
        stopped = False
        for action in actions:
            try:
                if isinstance(action, Start):
                    self._wanted = action
                    if self._fault_kind is None:
                        self._start_with_room(action)
                    else:  # a press while stopped: look for room now, not in seconds
                        self._retry(action.at)
                elif isinstance(action, Stop):
                    self._wanted, stopped = None, True
                    self._stop(action.at)
            except Exception as err:
                if not self._stopped_by(err, action.at):
                    raise
        if stopped and self._wanted is None:  # the event is over, not going on in a new clip
            self.store.release_shortage()

    def stop(self, at: float) -> Recorded | None:
        """Finish the clip being recorded (if any) with its last packet so far."""
        try:
            return self._stop(at)
        except Exception as err:
            if not self._stopped_by(err, at):
                raise
            return None
        finally:
            self.store.release_shortage()

    # -- recording -------------------------------------------------------------------------

    def _take(self, packet: EncodedPacket) -> None:
        if self._fault_kind is not None:
            if packet.at >= self._retry_at:
                self._retry(packet.at)
            return  # a resumed clip took this packet from the ring
        if self._open is None:
            return
        try:
            self._open.mp4.write(packet)
        except Exception as err:
            if not out_of_space(err):
                raise
            self._cut_short(packet.at)

    def _start_with_room(self, action: Start, trigger_at: float | None = None) -> None:
        """Start a clip; if the disk is full, free room by retention and try once more,
        or stop recording if there is none."""
        if self._started(action, trigger_at):
            return
        need = self._need(action.since)
        self.store.short_of_space(hold=True)
        self.store.prune(need=CLIP_ROOM + need)
        if not (self.store.has_room(need) and self._started(action, trigger_at)):
            self._halt(DISK_FULL, action.at)

    def _started(self, action: Start, trigger_at: float | None) -> bool:
        """Start the clip; False if the disk was full (any other failure is raised)."""
        try:
            self._start(action, trigger_at)
        except Exception as err:
            if not out_of_space(err):
                raise
            return False
        return True

    def _start(self, action: Start, trigger_at: float | None = None) -> None:
        follows = None
        if self._open is not None:  # the same visit goes on in a new clip (a bell after motion)
            follows = self._open.recording.id
            self._stop(action.at)
            if self._fault_kind is not None:  # finishing it found the disk full
                return
        backlog = self.ring.since(action.since)
        if not backlog:
            log.warning("no keyframe in the buffer yet; the clip starts with the next one")
        start_at = backlog[0].at if backlog else action.at
        recording = self.store.new_clip(action.trigger, start=self._wall(start_at), follows=follows)
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
                with contextlib.suppress(OSError):  # a failing disk: leave what is there
                    recording.abort()
            raise
        self._open = _Open(
            recording,
            mp4,
            start_at,
            action.at if trigger_at is None else trigger_at,
            action.trigger,
        )
        self._on_clip("started", action.trigger)

    def _stop(self, at: float) -> Recorded | None:
        if self._open is None:
            return None
        current, self._open = self._open, None
        if current.mp4.first_at is None:  # no keyframe came: not one frame to play
            current.mp4.abandon()
            current.recording.discard()
            return None
        last = current.mp4.last_at if current.mp4.last_at is not None else at
        try:
            current.mp4.close()
            clip: Clip | None = current.recording.finish(end=self._end(current, last))
        except Exception as err:
            if not out_of_space(err):
                with contextlib.suppress(OSError):
                    current.recording.abort()  # kept as a crash leaves it: cut short
                raise
            clip = self._salvage(current, last, need=0)
            if not self.store.has_room():
                self._halt(DISK_FULL, at)
        return None if clip is None else self._recorded(current, clip, last)

    def _end(self, current: _Open, last: float) -> float:
        """The clip's end: its start plus the video's own duration in camera time, never
        a second reading of the wall clock (which may have stepped since the start)."""
        return current.recording.start + max(0.0, last - current.start_at)

    def _recorded(self, current: _Open, clip: Clip, last: float) -> Recorded:
        first = current.mp4.first_at if current.mp4.first_at is not None else last
        recorded = Recorded(clip, first, last, current.trigger_at)
        self.finished.append(recorded)
        self._on_clip("finished", clip)
        return recorded

    # -- a full disk -----------------------------------------------------------------------

    def _cut_short(self, at: float) -> None:
        """The disk filled up mid-clip: close the clip with what reached the disk, keep
        it, let retention make room from other clips, and go on recording if it could."""
        current, self._open = self._open, None
        assert current is not None
        log.warning("disk full: clip %s ended at its last whole fragment", current.recording.id)
        last = current.mp4.last_at if current.mp4.last_at is not None else at
        # The new clip has its own pre-roll: it overlaps what the cut clip lost (the
        # frame in the muxer, the writer's unsealed chunk), so no moment goes unrecorded.
        again = Start(at=at, since=at - self.pre_roll, trigger=current.trigger)
        need = self._need(again.since)
        clip = self._salvage(current, last, need)
        if clip is not None:
            self._recorded(current, clip, last)
        if not self.store.has_room(need):
            self._halt(DISK_FULL, at)
            return
        self._start_with_room(again, trigger_at=current.trigger_at)

    def _need(self, since: float) -> int:
        """Bytes a clip starting at ``since`` writes at once: its pre-roll from the ring."""
        return sum(len(packet.data) for packet in self.ring.since(since))

    def _salvage(self, current: _Open, last: float, need: int) -> Clip | None:
        """A full disk stopped the clip's writer, which ended the file at its last whole
        fragment: keep the clip from the space rules, make room from other clips (the
        index needs some to record it), then record what reached the disk. None if
        nothing did."""
        current.mp4.abandon()
        self.store.short_of_space(current.recording.id, hold=True)
        self.store.prune(need=CLIP_ROOM + need)
        return current.recording.cut_short(end=self._end(current, last))

    # -- stopped, and resuming ---------------------------------------------------------------

    def _stopped_by(self, err: BaseException, at: float) -> bool:
        """Whether ``err`` is the disk's (full, read-only, failing): if so recording stops
        until it is fixed, and the caller goes on. Anything else is the caller's."""
        if out_of_space(err):
            self.store.short_of_space(hold=True)
            self._halt(DISK_FULL, at)
            return True
        if storage_failure(err):
            assert isinstance(err, OSError)
            self._halt(STORAGE, at, err)
            return True
        return False

    def _halt(self, kind: str, at: float, err: OSError | None = None) -> None:
        """Stop recording for ``kind``: the clip being recorded, if any, is left partial
        (kept as cut short), and the fault is logged once an episode."""
        current, self._open = self._open, None
        if current is not None:
            current.mp4.abandon()
            with contextlib.suppress(OSError):
                current.recording.abort()
        if kind == DISK_FULL:
            text = disk_full_fault(*self._held())
        else:
            assert err is not None
            text = storage_fault(self.store.data_dir, err)
        if self._fault_kind != kind:
            log.error("%s", text)
        self.fault, self._fault_kind = text, kind
        self._retry_at = at + RETRY_SECONDS

    def _held(self) -> tuple[int, int]:
        try:
            return self.store.space_held()
        except OSError:
            return 0, 0

    def _retry(self, at: float) -> None:
        """Stopped: look whether the disk has room (or the folder takes writes) again;
        if so, resume, with a clip and its pre-roll if the trigger still wants one."""
        self._retry_at = at + RETRY_SECONDS
        if self._fault_kind == DISK_FULL:
            need = self._need(at - self.pre_roll) if self._wanted is not None else 0
            self.store.prune(need=CLIP_ROOM + need)  # the owner may have unkept clips
            if not self.store.has_room(need):
                self.fault = disk_full_fault(*self._held())
                return
        else:
            problem = self.store.writable()
            if problem is not None:
                self.fault = storage_fault(self.store.data_dir, problem)
                return
        why = "the disk has room" if self.disk_full else f"{self.store.data_dir} takes writes"
        log.warning("recording resumed: %s again", why)
        self.fault = self._fault_kind = None
        wanted = self._wanted
        if wanted is not None:
            again = Start(at=at, since=at - self.pre_roll, trigger=wanted.trigger)
            self._start_with_room(again)
