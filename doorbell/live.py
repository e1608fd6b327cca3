"""The live view's picture: the latest masked frame as a JPEG, made only when someone watches.

    live = LiveFrames(on_viewers=lambda n: led.set(n > 0))
    live.offer(frame)                  # camera thread, after the privacy mask
    number, jpeg = live.latest_jpeg()  # web handler (executor thread), at the live rate

The camera thread only keeps a reference to each frame; the JPEG is encoded
on demand, once per frame however many tabs watch. ``watching`` counts the
viewers so the recording LED can be honest (law 8).

Thread ownership: ``offer`` runs on the camera thread and only swaps one
reference (atomic in CPython); ``_lock`` guards the cached JPEG and the
viewer count, which the web's executor threads and the event loop share.
"""

import threading
from collections.abc import Callable

from doorbell.camera.frame import Frame

LIVE_WIDTH = 640  # pixels: wide enough for a phone, a fraction of the encoder's work
LIVE_QUALITY = 70  # JPEG quality, 0-100


class LiveFrames:
    """The latest masked frame, as JPEG for the live view; counts who watches."""

    def __init__(
        self,
        on_viewers: Callable[[int], None],
        width: int = LIVE_WIDTH,
        quality: int = LIVE_QUALITY,
    ) -> None:
        self._on_viewers = on_viewers
        self._width, self._quality = width, quality
        self._lock = threading.Lock()
        self._frame: Frame | None = None
        self._jpeg: tuple[int, bytes] | None = None
        self.viewers = 0

    def offer(self, frame: Frame) -> None:
        """On the camera thread, after masking: keep a reference, encode only on demand."""
        self._frame = frame

    def latest_jpeg(self) -> tuple[int, bytes] | None:
        """(frame number, JPEG bytes) of the latest frame, at most ``width`` pixels wide;
        None before the first frame or if encoding failed."""
        import cv2

        frame = self._frame
        if frame is None:
            return None
        with self._lock:
            if self._jpeg is None or self._jpeg[0] != frame.index:
                image = frame.image
                if image.shape[1] > self._width:
                    height = round(image.shape[0] * self._width / image.shape[1])
                    image = cv2.resize(image, (self._width, height), interpolation=cv2.INTER_AREA)
                ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self._quality])
                if not ok:
                    return None
                self._jpeg = (frame.index, jpeg.tobytes())
            return self._jpeg

    def watching(self, delta: int) -> None:
        """A viewer came (+1) or left (-1); ``on_viewers`` hears the new count."""
        with self._lock:
            self.viewers += delta
            viewers = self.viewers
        self._on_viewers(viewers)
