"""Motion on the low-resolution grey stream: frames in, results out.

    detector = MotionDetector(320, 240, MotionSettings(), zone=zone_mask)
    for frame in grey_frames:
        result = detector.update(frame)
        if result.started: ...

Per frame: a 3x3 blur, the difference against a running-average background,
a threshold and a dilation, then connected blobs. The background learns fast
where nothing moves and slowly where something does (so a parked car or a
visitor who stood still fades in, instead of leaving a "ghost" forever). A
*nuisance map* remembers how often each pixel moved: pixels that move much of
the time (a tree in the wind, rippling water, a flag) stop counting, while
whatever crosses them once still shows (the map learns for ``warmup_frames``
after a start before any motion counts). Motion needs one blob of at least
``min_area`` of the frame inside the zone, for ``min_frames`` frames running;
it ends after ``quiet_frames`` frames without. A sudden change over most of
the frame (lights on, the IR filter switching, a cloud) resets the background
instead of firing.

No clock, no camera, no file: the same frames always give the same results.
Cheaper per frame than OpenCV's MOG2 by more than an order of magnitude and
at least as accurate on the shared footage (``bench/motion_bench.py``).
"""

from dataclasses import dataclass

import cv2
import numpy as np

from doorbell.config import MotionSettings


@dataclass(frozen=True)
class MotionResult:
    score: float  # the largest blob inside the zone, as a fraction of the frame
    boxes: tuple[tuple[int, int, int, int], ...]  # (x, y, w, h) of blobs over min_area
    active: bool  # motion is going on (after min_frames, until quiet_frames)
    started: bool  # this frame turned it on
    stopped: bool  # this frame turned it off
    lighting_reset: bool  # the background was reset: a lighting change, not motion


class MotionDetector:
    """Motion state of one camera's low-res grey stream. Not thread-safe."""

    def __init__(
        self,
        width: int,
        height: int,
        settings: MotionSettings | None = None,
        zone: np.ndarray | None = None,
    ) -> None:
        self.size = (width, height)
        self.settings = settings or MotionSettings()
        if zone is not None and zone.shape != (height, width):
            raise ValueError(f"the zone mask is {zone.shape[::-1]}, the frames {self.size}")
        self._zone = None if zone is None else np.where(zone > 0, 255, 0).astype(np.uint8)
        self._kernel = np.ones((3, 3), np.uint8)
        self._background: np.ndarray | None = None
        self._nuisance = np.zeros((height, width), np.float32)
        self._run = 0  # frames with motion running (positive) or without (negative)
        self._seen = 0  # frames since the start or the last reset
        self.active = False
        self.mask: np.ndarray = np.zeros((height, width), np.uint8)

    def reset(self) -> None:
        """Forget the background (after the camera reconnects, say)."""
        self._background = None
        self._run = 0
        self._seen = 0

    def foreground(self, grey: np.ndarray) -> np.ndarray:
        """The raw changed-pixel mask of ``grey`` (uint8 0/255), updating the model.

        This is the per-pixel stage alone; :meth:`update` adds the decisions.
        """
        s = self.settings
        frame = cv2.blur(grey, (3, 3))
        if self._background is None:
            self._background = frame.astype(np.float32)
        diff = cv2.absdiff(frame, cv2.convertScaleAbs(self._background))
        _, mask = cv2.threshold(diff, s.threshold, 255, cv2.THRESH_BINARY)
        mask = cv2.dilate(mask, self._kernel)
        cv2.accumulateWeighted(
            frame, self._background, s.background_rate, mask=cv2.bitwise_not(mask)
        )
        if s.ghost_rate:
            cv2.accumulateWeighted(frame, self._background, s.ghost_rate, mask=mask)
        if s.nuisance_rate:  # in grey levels: 255 is "moved in every frame"
            cv2.accumulateWeighted(mask, self._nuisance, s.nuisance_rate)
        return mask

    def update(self, grey: np.ndarray) -> MotionResult:
        """Take one grey frame (HxW uint8, the detector's size) and say what moved."""
        if grey.shape != (self.size[1], self.size[0]):
            raise ValueError(f"frame is {grey.shape[::-1]}, the detector expects {self.size}")
        s = self.settings
        mask = self.foreground(grey)
        if cv2.countNonZero(mask) > s.lighting_change * mask.size:
            self._background = cv2.blur(grey, (3, 3)).astype(np.float32)
            return self._decide(0.0, (), lighting_reset=True)
        _, calm = cv2.threshold(self._nuisance, s.nuisance_level * 255, 255, cv2.THRESH_BINARY_INV)
        mask = cv2.bitwise_and(mask, calm.astype(np.uint8))
        if self._zone is not None:
            mask = cv2.bitwise_and(mask, self._zone)
        self.mask = mask  # what counted, for tuning views and benchmarks
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        min_pixels = s.min_area * mask.size
        areas = [cv2.contourArea(c) for c in contours]
        score = max(areas, default=0.0) / mask.size
        boxes = tuple(
            cv2.boundingRect(c)
            for c, area in zip(contours, areas, strict=True)
            if area >= min_pixels
        )
        return self._decide(score, boxes, lighting_reset=False)

    def _decide(self, score: float, boxes: tuple, *, lighting_reset: bool) -> MotionResult:
        s = self.settings
        self._seen += 1
        moving = score >= s.min_area and self._seen > s.warmup_frames
        if moving:
            self._run = self._run + 1 if self._run > 0 else 1
        else:
            self._run = self._run - 1 if self._run < 0 else -1
        started = not self.active and self._run >= s.min_frames
        stopped = self.active and -self._run >= s.quiet_frames
        self.active = (self.active or started) and not stopped
        return MotionResult(score, boxes, self.active, started, stopped, lighting_reset)
