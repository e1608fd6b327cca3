"""The OpenCV backend for live sources: a USB webcam (an index such as "0", or a device
such as /dev/video0) or a stream URL (RTSP, HTTP). A video file is
:mod:`doorbell.camera.file`.

    camera = OpenCVCamera("0")                                    # the first webcam
    camera = OpenCVCamera("rtsp://admin:secret@192.168.1.20/stream1")

Frame times are seconds of ``clock`` (monotonic) since the first frame came.

A failed read (a corrupt packet, a hiccup on the network) does not end the
camera: reads are retried until ``stall_after`` seconds (:data:`STALL_AFTER`)
have passed without a frame. Only then does :meth:`OpenCVCamera.frames` end,
with the true reason: ``CameraError("no frame from rtsp://admin@192.168.1.20/stream1
for 5 s")``, and the camera loop opens it again. It never just ends: a live
source has no end. A URL is opened with FFmpeg's open and read timeouts
(:data:`OPEN_TIMEOUT`, :data:`READ_TIMEOUT`), so a stalled stream is noticed
in seconds, not after OpenCV's default 30 s.

Messages name the source without its password or query string (a log never
holds a secret): see :func:`source_name`.
"""

import time
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Protocol

import cv2
import numpy as np

from doorbell.camera import CameraError, Frame

OPEN_TIMEOUT = 5.0  # seconds a URL may take to open (FFmpeg: connect, handshake, probe)
READ_TIMEOUT = 3.0  # seconds one read of a URL may block
STALL_AFTER = 5.0  # seconds without a frame before the source counts as gone
RETRY_PAUSE = 0.1  # seconds between reads that fail at once (an unplugged webcam)


class Capture(Protocol):
    """What this backend uses of ``cv2.VideoCapture``."""

    def read(self) -> tuple[bool, np.ndarray | None]: ...
    def get(self, prop: int) -> float: ...
    def isOpened(self) -> bool: ...
    def release(self) -> None: ...


def source_name(source: str | int) -> str:
    """A live source as messages name it: ``webcam 0``, or the URL without its password
    and query string (``rtsp://admin:pw@cam/s?token=x`` → ``rtsp://admin@cam/s``)."""
    if isinstance(source, int) or source.isdigit():
        return f"webcam {source}"
    if "://" not in source:
        return source
    parts = urllib.parse.urlsplit(source)
    host = parts.netloc.rpartition("@")[2]
    user = f"{parts.username}@" if parts.username else ""
    return urllib.parse.urlunsplit((parts.scheme, user + host, parts.path, "", ""))


class OpenCVCamera:
    """A webcam or a stream URL (see the module). ``width``, ``height``: pixels of the
    first frame; ``fps``: what the source says (1-240), else 15.

    Raises CameraError naming the source if it cannot be opened or gives no frame for
    ``stall_after`` seconds. ``capture`` is a seam for tests: an opened capture to use.
    """

    def __init__(
        self,
        source: str | int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        stall_after: float = STALL_AFTER,
        open_timeout: float = OPEN_TIMEOUT,
        read_timeout: float = READ_TIMEOUT,
        capture: Capture | None = None,
    ) -> None:
        self.source = source
        self.name = source_name(source)
        self.stall_after = stall_after
        self._clock, self._sleep = clock, sleep
        self._capture = capture if capture is not None else self._open(open_timeout, read_timeout)
        try:
            self._first, self._start = self._next_image()
        except BaseException:
            self._capture.release()
            raise
        self.height, self.width = self._first.shape[:2]
        fps = self._capture.get(cv2.CAP_PROP_FPS)
        self.fps = fps if 1.0 <= fps <= 240.0 else 15.0

    def _open(self, open_timeout: float, read_timeout: float) -> Capture:
        source = self.source
        if isinstance(source, str) and "://" in source:
            timeouts = [
                cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
                round(open_timeout * 1000),
                cv2.CAP_PROP_READ_TIMEOUT_MSEC,
                round(read_timeout * 1000),
            ]
            capture = cv2.VideoCapture(source, cv2.CAP_FFMPEG, timeouts)
            why = f"nothing answered in {open_timeout:g} s, or it is not a video stream"
        else:
            index = int(source) if isinstance(source, int) or source.isdigit() else None
            capture = cv2.VideoCapture(source if index is None else index)
            why = "not connected, or in use by another program"
        if not capture.isOpened():
            capture.release()
            raise CameraError(f"{self.name}: cannot open it ({why})")
        return capture

    def _next_image(self) -> tuple[np.ndarray, float]:
        """The next picture and the clock's time when it came. A failed read is tried
        again until ``stall_after`` seconds have passed since this call began."""
        asked = self._clock()
        while True:
            ok, image = self._capture.read()
            now = self._clock()
            if ok and image is not None:
                return image, now
            silent = now - asked
            if silent >= self.stall_after:
                raise CameraError(f"no frame from {self.name} for {silent:.0f} s")
            self._sleep(RETRY_PAUSE)

    def frames(self) -> Iterator[Frame]:
        image, came = self._first, self._start
        index = 0
        while True:
            yield Frame(image, came - self._start, index)
            index += 1
            image, came = self._next_image()

    def close(self) -> None:
        self._capture.release()
