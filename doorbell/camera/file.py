"""A video file as the camera: decoded with PyAV (:mod:`doorbell.codec`), timed by its own
timestamps.

    camera = FileCamera("porch.mp4")                         # doorbell replay
    camera = FileCamera("porch.mp4", realtime=True, loop=True)  # a demo from a file
    for frame in camera.frames():
        frame.at      # the file's presentation time: seconds after its first frame

A frame's time is the presentation time the file gives it (pts x time base),
relative to the first frame, never frame number / frame rate: a
variable-frame-rate file keeps its true times. Times only increase: looping,
each pass starts one frame (1 / fps) after the previous pass's last frame,
and a timestamp that goes back or repeats (two recordings joined) starts a
new stretch the same way, and a frame repeated or out of order after damage
is dropped (:class:`FrameTimes`). ``realtime`` paces the
frames by those times on ``clock``, and like a real camera it does not wait for a
reader that falls behind: a frame due more than :data:`MISSED_AFTER` ago is skipped,
its number left out of the frames' ``index`` (a gap the camera loop counts as missed).

Damaged data in the middle is skipped and decoding goes on after it. Each
damaged stretch is reported once, from the first packet that did not decode
to the first good frame after it, to ``on_damage`` (by default a logged
warning) and kept in ``damaged``::

    porch.mp4: damaged video from 21.3 s to 22.1 s skipped

A file that is not camera video (a text file, a photo, a playlist, sound
alone) is refused with a :class:`~doorbell.camera.CameraError` naming it.
"""

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from doorbell.camera import CameraError, Frame
from doorbell.codec import Picture, VideoFile

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Damage:
    """A stretch of a file's video that could not be decoded: seconds of frame time."""

    start: float
    end: float

    def describe(self, path: str) -> str:
        return f"{path}: damaged video from {self.start:.1f} s to {self.end:.1f} s skipped"


# A real-time file skips a frame its reader is this late for: what a Pi camera's buffers
# hold (picamera2's video configuration keeps 6 buffers: 0.4 s at 15 fps).
MISSED_AFTER = 0.4  # seconds
# A frame whose time is at most this far behind the last one's is dropped: a repeated
# frame, or one out of order after damaged data. Further back, the file's clock started
# again (two recordings joined): a new stretch. Seconds.
REORDER_WINDOW = 1.0


class FrameTimes:
    """Presentation times in (seconds, as the file gives them, or None), frame times out:
    0 at the first frame, then increasing with the file's own times.

    ``step`` (seconds, one nominal frame) separates what cannot follow on: the next pass
    of a loop (:meth:`new_pass`), a clock that started again, a frame without a time.
    A frame at or up to :data:`REORDER_WINDOW` before the last one gets None: drop it.

    >>> times = FrameTimes(0.1)
    >>> [times.at(pts) for pts in (5.0, 5.25, 5.5, 5.5, 2.0)]
    [0.0, 0.25, 0.5, None, 0.6]
    """

    def __init__(self, step: float) -> None:
        self.step = step
        self.last: float | None = None  # the last frame time given
        self._origin: float | None = None  # the pts at which this stretch began
        self._base = 0.0  # the frame time at which this stretch began

    def at(self, pts: float | None) -> float | None:
        """The frame time of the next frame, shown at ``pts``; None to drop it."""
        if pts is not None and self._origin is not None:
            at = self._base + pts - self._origin
            if self.last is None or at > self.last:
                self.last = at
                return at
            if at >= self.last - REORDER_WINDOW:
                return None
        # a new pass, a clock started again, or a frame without a time
        at = 0.0 if self.last is None else self.last + self.step
        if pts is not None:
            self._origin, self._base = pts, at
        self.last = at
        return at

    def peek(self, pts: float | None) -> float:
        """Where ``pts`` falls in frame time, without taking it (for reports)."""
        if pts is None or self._origin is None:
            return self.last or 0.0
        return max(0.0, self._base + pts - self._origin)

    def new_pass(self) -> None:
        """The file starts again: its next frame comes one step after the last."""
        self._origin = None


class FileCamera:
    """A video file as the camera (see the module). ``width``, ``height``: pixels;
    ``fps``: the file's average rate (nominal: times come from the file); ``duration``:
    seconds, or None if the file does not say. Raises CameraError naming the file if it
    is missing, unreadable, not camera video, or has no frame that decodes."""

    def __init__(
        self,
        source: str,
        *,
        realtime: bool = False,
        loop: bool = False,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        on_damage: Callable[[Damage], None] | None = None,
    ) -> None:
        self.source = str(source)
        self.realtime, self.loop = realtime, loop
        self._clock, self._sleep = clock, sleep
        self._on_damage = on_damage or self._log_damage
        self.damaged: list[Damage] = []
        self._damage_from: float | None = None
        self._video = VideoFile(self.source)
        self.width, self.height = self._video.width, self._video.height
        self.fps, self.duration = self._video.fps, self._video.duration
        self.colour = self._video.colour  # see camera.colour_of
        self._times = FrameTimes(1.0 / self.fps)
        self._pictures = self._video.pictures(self._damaged_at)
        try:
            self._first: Picture | None = next(self._pictures, None)
        except BaseException:
            self.close()
            raise
        if self._first is None:
            self.close()
            raise CameraError(f"{self.source}: no frame of its video can be decoded")

    def _log_damage(self, damage: Damage) -> None:
        log.warning("%s", damage.describe(self.source))

    def _damaged_at(self, pts: float | None) -> None:
        at = self._times.peek(pts)
        if self._damage_from is None or at < self._damage_from:
            self._damage_from = at

    def _report(self, end: float) -> None:
        assert self._damage_from is not None
        damage = Damage(self._damage_from, max(end, self._damage_from))
        self._damage_from = None
        self.damaged.append(damage)
        self._on_damage(damage)

    def _one_pass(self) -> Iterator[Picture]:
        if self._first is not None:
            first, self._first = self._first, None
            yield first
        yield from self._pictures

    def frames(self) -> Iterator[Frame]:
        index = 0
        start: float | None = None  # the clock's time at frame time 0, when realtime
        while True:
            seen = 0
            for picture in self._one_pass():
                at = self._times.at(picture.pts)
                if at is None:  # repeated, or out of order: already past
                    continue
                if self._damage_from is not None and at > self._damage_from:
                    self._report(at)  # the first good frame after the damage
                if self.realtime:
                    if start is None:
                        start = self._clock() - at
                    early = start + at - self._clock()
                    if early < -MISSED_AFTER:
                        index += 1  # missed, as a camera's frame with no buffer free
                        continue
                    self._sleep(max(0.0, early))
                if picture.decoded is not None:  # as decoded: copied or made BGR if asked
                    yield Frame(None, at, index, decoded=picture.decoded)
                else:
                    assert picture.bgr is not None  # a picture is I420 or BGR
                    yield Frame(picture.bgr, at, index)
                index += 1
                seen += 1
            if self._damage_from is not None:  # damaged to the end
                self._report(self._times.last or 0.0)
            if not self.loop:
                return
            if not seen:
                raise CameraError(f"{self.source}: no frame of its video can be decoded")
            self._reopen()

    def _reopen(self) -> None:
        self.close()
        self._video = VideoFile(self.source)
        self._pictures = self._video.pictures(self._damaged_at)
        self._times.new_pass()

    def close(self) -> None:
        self._pictures.close()
        self._video.close()
