"""The OpenCV backend: a USB webcam (by index), a video file, or an RTSP/HTTP URL.

    camera = OpenCVCamera("porch.mp4", realtime=True, loop=True)   # a demo from a file
    camera = OpenCVCamera("0")                                     # the first webcam

A file plays as fast as it decodes unless ``realtime``; its frame times are
video time (frame number / fps), so replays are exact and repeatable. A live
source's times are seconds of ``clock`` since it opened.
"""

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np

from doorbell.camera import CameraError, Frame


class OpenCVCamera:
    def __init__(
        self,
        source: str | int,
        *,
        realtime: bool = False,
        loop: bool = False,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.source = source
        self.is_file = isinstance(source, str) and Path(source).is_file()
        self.realtime = realtime
        self.loop = loop and self.is_file
        self._clock, self._sleep = clock, sleep
        if (
            isinstance(source, str)
            and not self.is_file
            and "://" not in source
            and not source.isdigit()
        ):
            raise CameraError(f"{source}: no such video file")
        self._capture = self._open()
        ok, first = self._capture.read()
        if not ok:
            raise CameraError(f"{source}: opened, but no frame could be read")
        self._first = first
        self.height, self.width = first.shape[:2]
        fps = self._capture.get(cv2.CAP_PROP_FPS)
        self.fps = fps if 1.0 <= fps <= 240.0 else 15.0

    def _open(self) -> cv2.VideoCapture:
        target = (
            int(self.source)
            if isinstance(self.source, str) and self.source.isdigit()
            else self.source
        )
        capture = cv2.VideoCapture(target)
        if not capture.isOpened():
            raise CameraError(f"{self.source}: cannot open this video source")
        return capture

    def frames(self) -> Iterator[Frame]:
        index = 0
        start = self._clock()
        image: np.ndarray | None = self._first
        while True:
            if image is None:
                ok, image = self._capture.read()
                if not ok:
                    if not self.loop:
                        return
                    self._capture.release()
                    self._capture = self._open()
                    ok, image = self._capture.read()
                    if not ok:
                        return
            at = index / self.fps if self.is_file else self._clock() - start
            if self.realtime and self.is_file:
                self._sleep(max(0.0, start + at - self._clock()))
            yield Frame(image, at, index)
            index += 1
            image = None

    def close(self) -> None:
        self._capture.release()
