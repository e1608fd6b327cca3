"""A synthetic porch: a seeded, deterministic scene for the demo and the tests.

A textured wall and path, a door, sensor noise, and visitors who walk up to
the door, wait, and leave; optionally the porch light switching on. The same
seed always gives the same frames, so tests can say exactly what happens when.

    camera = SyntheticCamera(seed=1, visitors=[(5.0, 4.0)], duration=20)
    # one visitor arriving at 5 s who waits 4 s; 20 s of video at 15 fps
"""

import time
from collections.abc import Callable, Iterator, Sequence

import cv2
import numpy as np

from doorbell.camera.frame import Frame

WALK_SECONDS = 3.0
NOISE_ROWS = 64  # the noise field is this much taller than the picture: 65 windows


def add_noise(picture: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """``picture`` (uint8) plus ``noise`` (int8, the same shape), clipped to 0-255: the
    same values as in int16, in one saturating pass. With its top bit flipped a uint8
    value is an int8 128 lower, where OpenCV's add saturates at the same bounds (0.17
    ms a 960x540 frame against 0.6-1.1 through int16). ``picture`` is used up."""
    shifted = np.bitwise_xor(picture, 0x80, out=picture).view(np.int8)
    out = cv2.add(shifted, noise).view(np.uint8)
    return np.bitwise_xor(out, 0x80, out=out)


class SyntheticCamera:
    def __init__(
        self,
        *,
        seed: int = 1,
        width: int = 640,
        height: int = 360,
        fps: float = 15.0,
        visitors: Sequence[tuple[float, float]] = ((6.0, 5.0), (30.0, 8.0)),
        every: float | None = 45.0,
        light_at: float | None = None,
        duration: float | None = None,
        realtime: bool = False,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.width, self.height, self.fps = width, height, fps
        self.visitors = list(visitors)  # (arrival time, seconds waiting at the door)
        self.every = every  # the visitor schedule repeats with this period (None: once)
        self.light_at, self.duration, self.realtime = light_at, duration, realtime
        self._clock, self._sleep = clock, sleep
        self._rng = np.random.default_rng(seed)
        self._background = self._scene(np.random.default_rng(seed + 1000))
        # Sensor noise: one field of noise NOISE_ROWS rows taller than the picture, each
        # frame a window of it from a random row (a view: cheap, and still random). Drawn
        # in int8, a band of rows at a time: at 1280x720 a bank of 8 whole frames held
        # 22 MB, and a float64 field drawn at once would briefly take 200 MB at 960x540.
        noise_rng = np.random.default_rng(seed + 2000)
        self._noise = np.empty((height + NOISE_ROWS, width, 3), np.int8)
        for band in range(0, len(self._noise), 64):
            rows = self._noise[band : band + 64]
            rows[...] = noise_rng.normal(0, 3, rows.shape).round().clip(-127, 127)

    def _scene(self, rng: np.random.Generator) -> np.ndarray:
        w, h = self.width, self.height
        texture = rng.normal(110, 18, (h // 8, w // 8, 3)).clip(0, 255).astype(np.uint8)
        scene = cv2.resize(texture, (w, h), interpolation=cv2.INTER_CUBIC)
        cv2.rectangle(scene, (0, int(h * 0.75)), (w, h), (90, 100, 105), -1)  # the path
        door = (int(w * 0.42), int(h * 0.2), int(w * 0.58), int(h * 0.75))
        cv2.rectangle(scene, door[:2], door[2:], (40, 60, 120), -1)
        cv2.circle(scene, (int(w * 0.55), int(h * 0.5)), max(2, w // 120), (0, 200, 230), -1)
        return scene

    def _visitor_x(self, at: float) -> float | None:
        """Where a visitor stands at ``at`` (0-1 of the width), or None if nobody."""
        if self.every:
            at = at % self.every
        for arrival, wait in self.visitors:
            t = at - arrival
            if 0 <= t < WALK_SECONDS:
                return -0.1 + 0.6 * t / WALK_SECONDS  # walking in from the left
            if WALK_SECONDS <= t < WALK_SECONDS + wait:
                return 0.5  # at the door
            if WALK_SECONDS + wait <= t < 2 * WALK_SECONDS + wait:
                return 0.5 + 0.6 * (t - WALK_SECONDS - wait) / WALK_SECONDS  # leaving right
        return None

    def render(self, at: float) -> np.ndarray:
        """The frame at ``at`` seconds (deterministic but for the sensor noise)."""
        w, h = self.width, self.height
        frame = self._background.copy()
        if self.light_at is not None and at >= self.light_at:
            frame = cv2.add(frame, np.full_like(frame, 70))
        x = self._visitor_x(at)
        if x is not None:
            cx = int(x * w)
            body_w, body_h = w // 14, int(h * 0.42)
            top = int(h * 0.78) - body_h
            cv2.rectangle(
                frame, (cx - body_w // 2, top), (cx + body_w // 2, top + body_h), (60, 40, 160), -1
            )
            cv2.circle(frame, (cx, top - body_w // 2), body_w // 2, (120, 150, 200), -1)
        row = int(self._rng.integers(NOISE_ROWS + 1))
        return add_noise(frame, self._noise[row : row + h])

    def frames(self) -> Iterator[Frame]:
        start = self._clock()
        index = 0
        while self.duration is None or index / self.fps < self.duration:
            at = index / self.fps
            if self.realtime:
                self._sleep(max(0.0, start + at - self._clock()))
            yield Frame(self.render(at), at, index)
            index += 1

    def close(self) -> None:
        pass
