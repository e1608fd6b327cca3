"""What cameras hand over: pictures (:class:`Frame`) and encoded video (:class:`EncodedPacket`).

Importing this module loads neither OpenCV nor the camera libraries: the
recorder, the muxer and the tests use these types without the video stack.
A picture stays in the form its source gave it (BGR, packed YUV 4:2:0, or a
decoder's own YUV 4:2:0 planes, :class:`Planes`); any other form is made
from it, once, only when someone asks for it (BGR with OpenCV, imported then).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import numpy as np

LORES_WIDTH = 320
BT601 = 6  # H.273's matrix code for BT.601 (SMPTE 170M): OpenCV's conversions


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
    """What a muxer needs to know about an H.264 stream: size in pixels and frames a
    second (its SPS/PPS come in-band, before each keyframe, from every encoder used)."""

    width: int
    height: int
    fps: float


class Planes(Protocol):
    """A YUV 4:2:0 picture left where its decoder put it (a video file's frame): nothing
    is copied until :meth:`i420` is asked for. ``width`` x ``height`` pixels, both even."""

    width: int
    height: int

    def luma(self) -> np.ndarray:
        """The Y plane as it lies: height x width uint8, a read-only view whose rows may
        be padded (any stride)."""
        ...

    def i420(self) -> np.ndarray:
        """A packed copy of the picture: (height * 3 / 2) x width uint8, Y then U then V,
        the caller's to paint."""
        ...


class Frame:
    """One picture, ``at`` seconds after the camera started, number ``index``.

    The picture comes in one of three forms, and any other is made from it once,
    on first use:

    * ``image``: BGR, HxWx3 uint8 (a webcam, the synthetic porch);
    * ``i420``: packed YUV 4:2:0, H*3/2 x W uint8 (a Pi camera);
    * ``decoded``: a decoder's own YUV 4:2:0 planes (:class:`Planes`, a video file),
      read where they lie; ``i420`` is then a copy made when first asked for.

    ``masked`` says the privacy masks are painted already (by the camera, or by the
    pipeline into ``i420`` or ``image``): once a form has been painted, every form made
    afterwards is made from it, never from ``decoded``. ``grey`` is the camera's own
    low-resolution picture for motion; ``packets`` what its encoder made since the
    previous frame.
    """

    __slots__ = (
        "_i420",
        "_image",
        "at",
        "decoded",
        "grey",
        "index",
        "masked",
        "matrix",
        "packets",
    )

    def __init__(
        self,
        image: np.ndarray | None,
        at: float,
        index: int,
        *,
        i420: np.ndarray | None = None,
        decoded: Planes | None = None,
        grey: np.ndarray | None = None,
        packets: Sequence[EncodedPacket] | None = None,
        masked: bool = False,
    ) -> None:
        if image is None and i420 is None and decoded is None:
            raise ValueError("a frame needs a BGR image, an I420 buffer or decoded planes")
        self._image, self._i420, self.decoded = image, i420, decoded
        self.at, self.index = at, index
        self.grey, self.packets, self.masked = grey, packets, masked
        self.matrix = BT601  # the matrix of its YUV (H.273): the pipeline says (camera.colour)

    @property
    def has_image(self) -> bool:
        """Whether the BGR picture exists already (given, or converted once)."""
        return self._image is not None

    @property
    def has_i420(self) -> bool:
        """Whether the packed I420 buffer exists already (given, or copied once)."""
        return self._i420 is not None

    @property
    def i420(self) -> np.ndarray | None:
        """The packed YUV 4:2:0 buffer (H*3/2 x W uint8): as given, else copied from
        ``decoded`` on first use; None for a frame that came as BGR alone."""
        if self._i420 is None and self.decoded is not None and self._image is None:
            self._i420 = self.decoded.i420()
        return self._i420

    @property
    def image(self) -> np.ndarray:
        """The BGR picture (HxWx3 uint8), converted on first use from ``i420`` (copied
        from ``decoded`` first if need be) by its ``matrix`` (:func:`colour.to_bgr`)."""
        if self._image is None:
            from doorbell.camera.colour import to_bgr

            i420 = self.i420
            assert i420 is not None  # a frame has a BGR image, an I420 buffer or planes
            self._image = to_bgr(i420, self.matrix)
        return self._image
