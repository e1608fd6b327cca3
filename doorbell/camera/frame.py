"""What cameras hand over: pictures (:class:`Frame`) and encoded video (:class:`EncodedPacket`).

Importing this module loads neither OpenCV nor the camera libraries: the
recorder, the muxer and the tests use these types without the video stack.
A BGR picture is converted from YUV (with OpenCV, imported then) only when
someone asks for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

LORES_WIDTH = 320


def lores_size(width: int, height: int) -> tuple[int, int]:
    """The size of the picture motion detection works on: 320 wide, same aspect, even;
    a picture taller than 4:1 is 1280 high instead (a 6x4000 one is not 320x213334).

    ``(1280, 720)`` → ``(320, 180)``; width and height in pixels."""
    high = max(2, round(LORES_WIDTH * height / width / 2) * 2)
    if high <= 4 * LORES_WIDTH:
        return LORES_WIDTH, high
    return max(2, round(4 * LORES_WIDTH * width / height / 2) * 2), 4 * LORES_WIDTH


@dataclass(frozen=True)
class EncodedPacket:
    """One encoded frame: presentation time in seconds, keyframe flag, bytes."""

    at: float
    keyframe: bool
    data: bytes


@dataclass(frozen=True)
class StreamInfo:
    """What a muxer needs to know about an H.264 stream: size in pixels, frames a second,
    and the avcC (SPS/PPS) if they are not in-band."""

    width: int
    height: int
    fps: float
    extradata: bytes | None  # avcC (SPS/PPS); None if they are in-band


class Frame:
    """One picture, ``at`` seconds after the camera started, number ``index``.

    ``image`` is BGR, HxWx3 uint8. A camera that works in YUV 4:2:0 gives
    ``i420`` instead (H*3/2 x W uint8) and the BGR picture is made only if
    someone asks for it (a thumbnail, the live view). ``masked`` says the
    camera already painted the privacy masks; ``grey`` is its low-resolution
    picture for motion; ``packets`` what its encoder made since the previous
    frame.
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
    def has_image(self) -> bool:
        """Whether the BGR picture exists already (given, or converted once)."""
        return self._image is not None

    @property
    def image(self) -> np.ndarray:
        """The BGR picture (HxWx3 uint8), converted from ``i420`` on first use."""
        if self._image is None:
            import cv2

            assert self.i420 is not None  # a frame has a BGR image or an I420 buffer
            self._image = cv2.cvtColor(self.i420, cv2.COLOR_YUV2BGR_I420)
        return self._image
