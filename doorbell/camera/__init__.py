"""Cameras: one small protocol, three backends chosen by name.

    camera = open_camera("synthetic", seed=1)          # the demo and tests
    camera = open_camera("opencv", source="porch.mp4")  # a file, a webcam index, a URL
    camera = open_camera("picamera2", size=(1280, 720), masks=polygons)  # only on a Pi
    camera = open_camera("synthetic", orientation=Orientation(rotation=90))  # turned
    for frame in camera.frames():
        frame.image   # BGR uint8, HxWx3
        frame.at      # seconds since the first frame: a file's own presentation times,
                      # the Pi's sensor timestamps, a live source's monotonic clock

The ``opencv`` backend is two: a video file is decoded with PyAV
(:mod:`doorbell.camera.file`, by its own timestamps, damaged data skipped); a
webcam (an index such as "0", or /dev/video*) or a stream URL is read with
OpenCV (:mod:`doorbell.camera.opencv`). :func:`is_live` tells them apart.

Most cameras hand over pictures (:class:`Camera`) and leave masking and
encoding to the pipeline. A camera that encodes itself (the Pi's, with its
hardware H.264 encoder) is an :class:`EncodingCamera`: it masks every picture
before its encoder sees it, and delivers the encoded packets with each frame
(``frame.packets``), together with its low-resolution grey picture for motion
(``frame.grey``).

``orientation`` (:class:`~doorbell.camera.transform.Orientation`, the owner's
``[camera] rotation``, ``hflip``, ``vflip``) turns the picture before anything
else sees it: the Pi's camera mirrors on its sensor and turns a quarter turn
in software (:func:`~doorbell.camera.picam.open_pi_camera`); every other
camera is wrapped in an :class:`~doorbell.camera.transform.OrientedCamera`.
Its ``width`` and ``height`` are then the turned picture's.

Backends import their libraries lazily: ``picamera2`` is imported by its
backend alone, and only when chosen; importing this package loads no OpenCV
(the frame and packet types live in :mod:`doorbell.camera.frame`).
"""

import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from doorbell.camera.colour import OPENCV_YUV, ColourDescription
from doorbell.camera.frame import LORES_WIDTH, EncodedPacket, Frame, StreamInfo, lores_size
from doorbell.camera.transform import Orientation, OrientedCamera
from doorbell.errors import DoorbellError

__all__ = [
    "BACKENDS",
    "LORES_WIDTH",
    "Camera",
    "CameraError",
    "ColourDescription",
    "EncodedPacket",
    "EncodingCamera",
    "Frame",
    "Orientation",
    "StreamInfo",
    "colour_of",
    "encoded_stream",
    "is_live",
    "lores_size",
    "open_camera",
]


class Camera(Protocol):
    """What every camera gives: its picture size (pixels) and rate (frames a second),
    frames until it ends or fails (raising :class:`CameraError`), and ``close``."""

    width: int
    height: int
    fps: float

    def frames(self) -> Iterator[Frame]: ...
    def close(self) -> None: ...


@runtime_checkable
class EncodingCamera(Camera, Protocol):
    """A camera that encodes itself (the Pi's hardware H.264) adds two things.

    ``stream_info`` describes its H.264 stream for the muxer; its frames are
    already masked (``frame.masked``) and carry the packets its encoder made
    (``frame.packets``) and a low-resolution grey picture (``frame.grey``).
    ``stop_encoder`` stops the encoder and returns the packets it still held,
    so the clip being recorded keeps its last frames.
    """

    stream_info: StreamInfo

    def stop_encoder(self) -> list[EncodedPacket]: ...


def colour_of(camera: Camera) -> ColourDescription:
    """The colour description of the YUV the pipeline encodes from ``camera``: its own
    ``colour`` when it hands over YUV as it came (a file's decoder, the Pi's picture),
    else :data:`~doorbell.camera.colour.OPENCV_YUV`, what OpenCV makes of a BGR picture."""
    colour = getattr(camera, "colour", OPENCV_YUV)
    return colour if isinstance(colour, ColourDescription) else OPENCV_YUV


def encoded_stream(camera: Camera) -> StreamInfo | None:
    """The stream of a camera that encodes itself; None when the pipeline must encode."""
    return camera.stream_info if isinstance(camera, EncodingCamera) else None


class CameraError(DoorbellError, OSError):
    """The camera cannot be opened or stopped delivering frames."""


BACKENDS = ("synthetic", "opencv", "picamera2")
FILE_ONLY = ("realtime", "loop")  # options that only a file takes: a live source is live


def is_live(source: str | int) -> bool:
    """Whether an ``opencv`` source is live (a webcam index such as ``"0"``, a device such
    as ``/dev/video0``, a URL with ``://``) rather than a video file."""
    if isinstance(source, int) or source.isdigit() or "://" in source:
        return True
    try:
        return stat.S_ISCHR(Path(source).stat().st_mode)
    except OSError:
        return False


def open_camera(
    backend: str,
    orientation: Orientation | None = None,
    **options: Any,  # each backend takes its own options
) -> Camera:
    """The camera backend called ``backend`` (synthetic | opencv | picamera2), its picture
    turned by ``orientation`` (see the module; None: as the camera gives it). For
    ``opencv``, ``source`` picks a file (:class:`~doorbell.camera.file.FileCamera`) or a
    live source (:class:`~doorbell.camera.opencv.OpenCVCamera`, which ignores
    ``realtime`` and ``loop``)."""
    if backend == "picamera2":
        try:
            from doorbell.camera.picam import open_pi_camera
        except ImportError as err:
            raise CameraError(
                f"the Pi camera backend cannot load {err.name or 'picamera2'}: on Raspberry Pi "
                "OS, apt install python3-picamera2 (scripts/install.sh does); on another "
                'computer, set [camera] backend = "opencv" or "synthetic"'
            ) from None
        return open_pi_camera(orientation=orientation or Orientation(), **options)
    camera = _open_pictures(backend, options)
    if orientation is None or orientation.operation.identity:
        return camera
    return OrientedCamera(camera, orientation)


def _open_pictures(backend: str, options: dict[str, Any]) -> Camera:
    if backend == "synthetic":
        from doorbell.camera.synthetic import SyntheticCamera

        return SyntheticCamera(**options)
    if backend == "opencv":
        if is_live(options["source"]):
            from doorbell.camera.opencv import OpenCVCamera

            live = {k: v for k, v in options.items() if k not in FILE_ONLY}
            return OpenCVCamera(**live)
        from doorbell.camera.file import FileCamera

        return FileCamera(**options)
    raise ValueError(f"unknown camera backend {backend!r} ({', '.join(BACKENDS)})")
