"""Cameras: one small protocol, three backends chosen by name.

    camera = open_camera("synthetic", seed=1)          # the demo and tests
    camera = open_camera("opencv", source="porch.mp4")  # a file, a webcam index, a URL
    camera = open_camera("picamera2", size=(1280, 720), masks=polygons)  # only on a Pi
    for frame in camera.frames():
        frame.image   # BGR uint8, HxWx3
        frame.at      # seconds since the camera started (video time for a file)

Most cameras hand over pictures and leave masking and encoding to the
pipeline. A camera that encodes itself (the Pi's, with its hardware H.264
encoder) has a ``stream_info``, masks every picture before its encoder sees
it, and delivers the encoded packets with each frame (``frame.packets``),
together with its low-resolution grey picture for motion (``frame.grey``).

Backends import their libraries lazily: ``picamera2`` is imported by its
backend alone, and only when chosen.
"""

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np

from doorbell.errors import DoorbellError

LORES_WIDTH = 320


def lores_size(width: int, height: int) -> tuple[int, int]:
    """The size of the picture motion detection works on: 320 wide, same aspect, even."""
    return LORES_WIDTH, max(2, round(LORES_WIDTH * height / width / 2) * 2)


@dataclass(frozen=True)
class EncodedPacket:
    """One encoded frame: presentation time in seconds, keyframe flag, bytes."""

    at: float
    keyframe: bool
    data: bytes


@dataclass(frozen=True)
class StreamInfo:
    """What a muxer needs to know about an H.264 stream."""

    width: int
    height: int
    fps: float
    extradata: bytes | None  # avcC (SPS/PPS); None if they are in-band


class Frame:
    """One picture, ``at`` seconds after the camera started, number ``index``.

    ``image`` is BGR. A camera that works in YUV 4:2:0 gives ``i420`` instead
    and the BGR picture is made only if someone asks for it (a thumbnail, the
    live view). ``masked`` says the camera already painted the privacy masks;
    ``grey`` is its low-resolution picture for motion; ``packets`` what its
    encoder made since the previous frame.
    """

    __slots__ = ("_image", "at", "grey", "i420", "index", "masked", "packets")

    def __init__(
        self,
        image: np.ndarray | None,
        at: float,
        index: int,
        *,
        i420: np.ndarray | None = None,
        grey: np.ndarray | None = None,
        packets: Sequence[EncodedPacket] | None = None,
        masked: bool = False,
    ) -> None:
        if image is None and i420 is None:
            raise ValueError("a frame needs a BGR image or an I420 buffer")
        self._image = image
        self.at, self.index = at, index
        self.i420, self.grey, self.packets, self.masked = i420, grey, packets, masked

    @property
    def image(self) -> np.ndarray:
        if self._image is None:
            self._image = cv2.cvtColor(self.i420, cv2.COLOR_YUV2BGR_I420)
        return self._image


class Camera(Protocol):
    width: int
    height: int
    fps: float

    def frames(self) -> Iterator[Frame]: ...
    def close(self) -> None: ...


class CameraError(DoorbellError, OSError):
    """The camera cannot be opened or stopped delivering frames."""


BACKENDS = ("synthetic", "opencv", "picamera2")


def open_camera(backend: str, **options: object) -> Camera:
    """The camera backend called ``backend`` (synthetic | opencv | picamera2)."""
    if backend == "synthetic":
        from doorbell.camera.synthetic import SyntheticCamera

        return SyntheticCamera(**options)  # type: ignore[arg-type]
    if backend == "opencv":
        from doorbell.camera.opencv import OpenCVCamera

        return OpenCVCamera(**options)  # type: ignore[arg-type]
    if backend == "picamera2":
        try:
            from doorbell.camera.picam import PiCamera
        except ImportError as err:
            raise CameraError(
                f"the Pi camera backend cannot load {err.name or 'picamera2'}: on Raspberry Pi "
                "OS, apt install python3-picamera2 (scripts/install.sh does); on another "
                'computer, set [camera] backend = "opencv" or "synthetic"'
            ) from None
        return PiCamera(**options)  # type: ignore[arg-type]
    raise ValueError(f"unknown camera backend {backend!r} ({', '.join(BACKENDS)})")
