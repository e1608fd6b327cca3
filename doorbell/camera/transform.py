"""Turning and mirroring the camera's picture: ``[camera] rotation``, ``hflip``, ``vflip``.

    orientation = Orientation.from_settings(config.camera)  # 180: mounted upside down
    orientation.size(1280, 720)                      # (720, 1280) for 90 or 270
    image = orient(image, orientation.operation)     # BGR HxWx3 or grey HxW, a new array
    i420 = orient_i420(i420, orientation.operation)  # YUV 4:2:0 as (H*3/2, W), a new array
    camera = OrientedCamera(camera, orientation)     # every frame turned as it leaves

In the owner's words: the picture is turned ``rotation`` degrees clockwise
(0, 90, 180, 270; 180 for a camera mounted upside down, 90 or 270 for one on
its side), then mirrored left to right (``hflip``) and top to bottom
(``vflip``) as it then appears. Each of the 16 settings is one of the eight
symmetries of a rectangle; :class:`Operation` is the canonical form, a
mirror left to right (or none) and then a clockwise quarter-turn count, and
each of the eight is one OpenCV call per plane (``cv2.rotate``, ``cv2.flip``
or ``cv2.transpose``) but the anti-transpose (a mirror, then a quarter turn
clockwise), which is a transpose and a half turn in place: two.

The Pi's camera mirrors on the sensor (libcamera's ``Transform(hflip, vflip)``)
at no cost, which covers 0 and 180 degrees and any mirror; only a quarter turn
is left to do in software (:meth:`Operation.on_sensor`). Every other camera
is turned frame by frame by :class:`OrientedCamera`, before the privacy masks,
motion zones, encoder, thumbnail and live view see it: all of them work on the
picture as the owner sees it, and the recording has the turned size.

What it costs, a 1280x720 frame (medians of 300 and 1000, OpenCV 4.11, x86-64 dev machine under
load; not measured on a Pi): a quarter turn 0.3-0.7 ms in BGR, 0.15-0.2 ms in I420; a half
turn or a mirror 0.1 ms in BGR, 0.06 ms in I420, as much as copying the frame. A file
camera's frame (768x432, decoded by PyAV) went from 0.66 to 0.82 ms of CPU turned.

Importing this module loads neither OpenCV nor numpy (:mod:`doorbell.camera`
must not): they are imported when a picture is turned.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from doorbell.camera.colour import OPENCV_YUV
from doorbell.camera.frame import Frame

if TYPE_CHECKING:
    import numpy as np

    from doorbell.camera import Camera

ROTATIONS = (0, 90, 180, 270)  # degrees clockwise


@dataclass(frozen=True)
class Operation:
    """One of the eight symmetries of a rectangle, in canonical form: mirror left to right
    first if ``mirror``, then turn ``turns`` quarter turns (0-3) clockwise."""

    mirror: bool = False
    turns: int = 0

    def __post_init__(self) -> None:
        if self.turns not in (0, 1, 2, 3):
            raise ValueError(f"quarter turns must be 0 to 3, got {self.turns!r}")

    @property
    def identity(self) -> bool:
        return not self.mirror and not self.turns

    @property
    def swaps(self) -> bool:
        """Whether width and height trade places (a quarter turn, either way)."""
        return self.turns % 2 == 1

    def size(self, width: int, height: int) -> tuple[int, int]:
        """The (width, height) in pixels of a ``width`` x ``height`` picture once done."""
        return (height, width) if self.swaps else (width, height)

    def on_sensor(self) -> tuple[tuple[bool, bool], Operation]:
        """Split for a camera that can mirror but not transpose (the Pi's sensors):
        ``((hflip, vflip), rest)``, the mirrors the sensor does first, then ``rest`` (a
        quarter turn, clockwise or back, or nothing) in software."""
        if self.turns == 0:
            return (self.mirror, False), Operation()
        if self.turns == 2:  # a half turn is both mirrors; mirrored first, it is vflip alone
            return (not self.mirror, True), Operation()
        return (self.mirror, False), Operation(False, self.turns)


@dataclass(frozen=True)
class Orientation:
    """The owner's setting: turn ``rotation`` degrees clockwise (0, 90, 180, 270), then
    mirror left to right (``hflip``) and top to bottom (``vflip``). Raises ValueError
    naming the key for anything else."""

    rotation: int = 0
    hflip: bool = False
    vflip: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.rotation, bool) or self.rotation not in ROTATIONS:
            raise ValueError(
                f"[camera] rotation must be one of 0, 90, 180, 270, got {self.rotation!r}"
            )
        for key in ("hflip", "vflip"):
            if not isinstance(getattr(self, key), bool):
                raise ValueError(
                    f"[camera] {key} must be true or false, got {getattr(self, key)!r}"
                )

    @classmethod
    def from_settings(cls, settings: Any) -> Orientation:
        """The orientation of a :class:`~doorbell.config.CameraSettings` (or anything with
        ``rotation``, ``hflip``, ``vflip``; a missing one takes its default)."""
        return cls(
            getattr(settings, "rotation", 0),
            getattr(settings, "hflip", False),
            getattr(settings, "vflip", False),
        )

    @property
    def operation(self) -> Operation:
        """The canonical form. Mirroring after a turn of r is mirroring before a turn of
        -r; top to bottom is left to right and a half turn; both mirrors are a half turn."""
        turns = self.rotation // 90
        if self.hflip and self.vflip:
            return Operation(False, (turns + 2) % 4)
        if self.hflip:
            return Operation(True, -turns % 4)
        if self.vflip:
            return Operation(True, (2 - turns) % 4)
        return Operation(False, turns)

    def size(self, width: int, height: int) -> tuple[int, int]:
        """The (width, height) in pixels of a ``width`` x ``height`` picture once turned."""
        return self.operation.size(width, height)


def _into(source: np.ndarray, operation: Operation, out: np.ndarray) -> None:
    """Write ``source`` done by ``operation`` into ``out`` (its shape already the result's)."""
    import cv2

    mirror, turns = operation.mirror, operation.turns
    if operation.identity:
        out[...] = source
    elif not mirror:
        code = (cv2.ROTATE_90_CLOCKWISE, cv2.ROTATE_180, cv2.ROTATE_90_COUNTERCLOCKWISE)
        cv2.rotate(source, code[turns - 1], dst=out)
    elif turns in (0, 2):  # left to right; mirrored then a half turn is top to bottom
        cv2.flip(source, 1 if turns == 0 else 0, dst=out)
    elif turns == 3:  # mirrored then turned back: the transpose
        cv2.transpose(source, dst=out)
    else:  # mirrored then turned clockwise: the anti-transpose
        cv2.transpose(source, dst=out)
        cv2.flip(out, -1, dst=out)


def orient(image: np.ndarray, operation: Operation) -> np.ndarray:
    """``image`` (HxW grey or HxWxC, any dtype OpenCV takes) done by ``operation``: a new
    array, W x H for a quarter turn; ``image`` itself for the identity."""
    import numpy as np

    if operation.identity:
        return image
    height, width = image.shape[:2]
    out_w, out_h = operation.size(width, height)
    out = np.empty((out_h, out_w, *image.shape[2:]), image.dtype)
    _into(image, operation, out)
    return out


def i420_size(i420: np.ndarray) -> tuple[int, int]:
    """The picture size (width, height) of a packed I420 buffer of shape (H*3/2, W)."""
    rows, width = i420.shape
    return width, rows * 2 // 3


def orient_i420(i420: np.ndarray, operation: Operation) -> np.ndarray:
    """A YUV 4:2:0 picture as this project keeps it, a (H*3/2, W) uint8 array (Y: H rows
    of W; then U, then V: H/2 x W/2 each, packed on), done by ``operation``: each plane
    turned on its own, packed again as (W*3/2, H) for a quarter turn. ``i420`` itself for
    the identity. Raises ValueError for odd sides (no I420 has them)."""
    import numpy as np

    if operation.identity:
        return i420
    width, height = i420_size(i420)
    if width % 2 or height % 2 or i420.shape[0] != height * 3 // 2:
        raise ValueError(f"an I420 buffer of shape {i420.shape} is not an even-sided picture")
    out_w, out_h = operation.size(width, height)
    source = i420.reshape(-1)
    out = np.empty(out_w * out_h * 3 // 2, np.uint8)
    luma, chroma = width * height, (width // 2) * (height // 2)
    for start, length, (w, h) in (
        (0, luma, (width, height)),
        (luma, chroma, (width // 2, height // 2)),
        (luma + chroma, chroma, (width // 2, height // 2)),
    ):
        done_w, done_h = operation.size(w, h)
        plane = source[start : start + length].reshape(h, w)
        _into(plane, operation, out[start : start + length].reshape(done_h, done_w))
    return out.reshape(out_h * 3 // 2, out_w)


def orient_frame(frame: Frame, operation: Operation) -> Frame:
    """``frame`` with its pictures (BGR, I420, grey, whichever it has) done by
    ``operation``; its time, number, packets and ``masked`` flag kept."""
    if operation.identity:
        return frame
    image = orient(frame.image, operation) if frame.has_image else None
    i420 = orient_i420(frame.i420, operation) if frame.i420 is not None else None
    grey = orient(frame.grey, operation) if frame.grey is not None else None
    return Frame(
        image,
        frame.at,
        frame.index,
        i420=i420,
        grey=grey,
        packets=frame.packets,
        masked=frame.masked,
    )


class OrientedCamera:
    """A camera whose every frame is turned as it leaves it (see the module): ``width``
    and ``height`` (pixels) are the turned picture's, ``fps`` the camera's. The camera
    must hand over pictures, not masks or encodes them itself (ValueError): a camera
    that encodes itself is turned by its own means (the Pi's sensor)."""

    def __init__(self, camera: Camera, orientation: Orientation | Operation) -> None:
        from doorbell.camera import EncodingCamera

        if isinstance(camera, EncodingCamera):
            raise ValueError("a camera that encodes its own pictures cannot be turned afterwards")
        self.camera = camera
        self.operation = (
            orientation.operation if isinstance(orientation, Orientation) else orientation
        )
        self.width, self.height = self.operation.size(camera.width, camera.height)
        self.fps = camera.fps
        self.colour = getattr(camera, "colour", OPENCV_YUV)  # turning keeps its colour

    def frames(self) -> Iterator[Frame]:
        for frame in self.camera.frames():
            yield orient_frame(frame, self.operation)

    def close(self) -> None:
        self.camera.close()
