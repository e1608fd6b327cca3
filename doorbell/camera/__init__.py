"""Cameras: one small protocol, three backends chosen by name.

    camera = open_camera("synthetic", seed=1)          # the demo and tests
    camera = open_camera("opencv", source="porch.mp4")  # a file, a webcam index, a URL
    camera = open_camera("picamera2")                   # the Pi's camera (only on a Pi)
    for frame in camera.frames():
        frame.image   # BGR uint8, HxWx3
        frame.at      # seconds since the camera started (video time for a file)

Backends import their libraries lazily: ``picamera2`` is imported by its
backend alone, and only when chosen.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from doorbell.errors import DoorbellError


@dataclass(frozen=True)
class Frame:
    image: np.ndarray  # BGR, HxWx3, uint8
    at: float  # seconds: video time of a file, or monotonic time since start of a live camera
    index: int


class Camera(Protocol):
    width: int
    height: int
    fps: float

    def frames(self) -> Iterator[Frame]: ...
    def close(self) -> None: ...


class CameraError(DoorbellError, OSError):
    """The camera cannot be opened or stopped delivering frames."""


def open_camera(backend: str, **options: object) -> Camera:
    """The camera backend called ``backend`` (synthetic | opencv | picamera2)."""
    if backend == "synthetic":
        from doorbell.camera.synthetic import SyntheticCamera

        return SyntheticCamera(**options)  # type: ignore[arg-type]
    if backend == "opencv":
        from doorbell.camera.opencv import OpenCVCamera

        return OpenCVCamera(**options)  # type: ignore[arg-type]
    raise ValueError(f"unknown camera backend {backend!r} (synthetic, opencv)")
