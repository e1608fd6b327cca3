"""The Raspberry Pi camera through picamera2: the only module that imports it.

    camera = PiCamera(size=(1280, 720), fps=15, masks=polygons)
    for frame in camera.frames():
        frame.grey      # the 320-wide lores stream's luma, for motion
        frame.packets   # H.264 the Pi encoded since the previous frame

Two streams from one sensor: ``main`` (YUV 4:2:0, to the encoder) and
``lores`` (YUV 4:2:0, 320 wide, for motion). The privacy masks are painted
into both in picamera2's ``pre_callback``, which runs on each completed
request before its encoder or this module sees it (law 7), so masked pixels
never reach the H.264 stream, the thumbnail, the live view or the motion
detector.

The encoder is the Pi's own H.264 block (``H264Encoder``, over V4L2) where
there is one: Pi 4, Pi 3, Zero 2 W. The Pi 5 has none, so there it is
picamera2's ``LibavH264Encoder`` (libx264 on the CPU). Both repeat SPS/PPS
before every keyframe, so a clip can start at any keyframe. Their packets
arrive on picamera2's threads through :class:`PacketOutput` and go out with
the next frame.

The picture is mirrored on the sensor (libcamera's ``Transform(hflip,
vflip)`` in the configuration; a half turn is both), so the encoder, the
masks and the lores stream all get it the right way up at no cost. A quarter
turn (rotation 90 or 270) the Pi's sensors cannot do, nor its encoder take
from memory: :func:`open_pi_camera` then opens :class:`PiPictureCamera`, the
main stream alone without the Pi's encoder, turned in software
(:class:`~doorbell.camera.transform.OrientedCamera`), and the pipeline masks
and encodes it (libx264 on the CPU, as on a Pi 5).

This module is imported only when the ``picamera2`` backend is chosen.
"""

import fractions
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from libcamera import Transform  # type: ignore[import-not-found, unused-ignore]  # C, Pi only
from picamera2 import MappedArray, Picamera2
from picamera2.encoders import H264Encoder, LibavH264Encoder
from picamera2.outputs import Output
from picamera2.platform import get_platform

from doorbell.camera import Camera, CameraError, EncodedPacket, Frame, StreamInfo, lores_size
from doorbell.camera.colour import REC709, SMPTE170M, ColourDescription
from doorbell.camera.transform import Orientation, OrientedCamera
from doorbell.privacy import Polygon, PrivacyMask

if TYPE_CHECKING:
    from picamera2.request import CompletedRequest

log = logging.getLogger(__name__)
ENCODERS = ("auto", "hardware", "libav")


def choose_encoder(requested: str, platform: str) -> str:
    """``hardware`` or ``libav`` for the ``requested`` choice on ``platform`` (VC4 or PISP).

    VC4 (Pi 4, Pi 3, Zero 2 W) has an H.264 block; PISP (Pi 5) has none.
    """
    if requested not in ENCODERS:
        raise CameraError(f"unknown encoder {requested!r} ({', '.join(ENCODERS)})")
    if requested == "hardware" and platform != "VC4":
        raise CameraError("this Pi has no hardware H.264 encoder (a Pi 5?): use encoder = libav")
    if requested != "auto":
        return requested
    return "hardware" if platform == "VC4" else "libav"


class PacketOutput(Output):
    """A picamera2 output that keeps the encoder's packets until :meth:`take`.

    ``outputframe`` runs on picamera2's threads (the encoder's, or the
    camera's for libav); ``take`` on the frame loop's.
    """

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._packets: list[EncodedPacket] = []

    def outputframe(
        self,
        frame: bytes,
        keyframe: bool = True,
        timestamp: int | None = None,
        packet: object = None,
        audio: bool = False,
    ) -> None:
        if audio or timestamp is None:
            return
        encoded = EncodedPacket(timestamp / 1e6, bool(keyframe), bytes(frame))
        with self._lock:
            self._packets.append(encoded)

    def take(self) -> list[EncodedPacket]:
        with self._lock:
            packets, self._packets = self._packets, []
        return packets


def _plane(array: np.ndarray, width: int, height: int) -> np.ndarray:
    """The luma of a (height*3/2, stride) YUV 4:2:0 array, as a height x width copy."""
    return np.ascontiguousarray(array[:height, :width])


def _i420(array: np.ndarray, width: int, height: int, stride: int) -> np.ndarray:
    """A tightly packed (height*3/2, width) I420 copy of a padded camera buffer."""
    if stride == width:
        return np.ascontiguousarray(array.reshape(height * 3 // 2, width))
    flat = array.reshape(-1)
    luma = flat[: stride * height].reshape(height, stride)[:, :width]
    ch, cstride = height // 2, stride // 2
    planes = [
        flat[stride * height + p * cstride * ch :][: cstride * ch].reshape(ch, cstride)[
            :, : width // 2
        ]
        for p in range(2)
    ]
    return np.concatenate([luma.reshape(-1), *(p.reshape(-1) for p in planes)]).reshape(
        height * 3 // 2, width
    )


def _open(picamera2: Callable[[int], Picamera2], camera_num: int) -> Picamera2:
    try:
        return picamera2(camera_num)
    except (RuntimeError, IndexError, OSError) as err:
        raise CameraError(f"Pi camera {camera_num}: cannot open it ({err})") from None


def configure_streams(
    camera: Picamera2,
    size: tuple[int, int],
    fps: float,
    lores: tuple[int, int] | None,
    flips: tuple[bool, bool],
) -> dict:
    """Configure ``camera`` for video: a YUV 4:2:0 ``main`` stream of ``size`` (pixels), a
    ``lores`` one if given, ``fps`` frames a second, mirrored on the sensor by ``flips``
    (hflip, vflip). Returns the configuration the camera took (sizes, strides).
    Raises ValueError if the camera does not mirror as asked (libcamera adjusts a
    transform it cannot do rather than refuse it)."""
    hflip, vflip = flips
    config = camera.create_video_configuration(
        main={"size": size, "format": "YUV420"},
        lores={"size": lores, "format": "YUV420"} if lores else None,
        controls={"FrameRate": fps},
        transform=Transform(hflip=hflip, vflip=vflip),
        display=None,
        encode="main",
    )
    camera.configure(config)
    streams = camera.camera_configuration()
    took = streams.get("transform")
    if took is not None and (bool(took.hflip), bool(took.vflip)) != (hflip, vflip):
        raise ValueError(
            f"it cannot mirror its picture (asked hflip={hflip}, vflip={vflip}; it gave {took})"
        )
    return streams


class PiCamera:
    """The Pi camera: masked, encoded on the Pi, with a lores stream for motion; mirrored
    on the sensor by ``hflip`` and ``vflip`` (both: a half turn)."""

    def __init__(
        self,
        *,
        size: tuple[int, int] = (1280, 720),
        fps: float = 15.0,
        masks: Sequence[Polygon] = (),
        keyframe_interval: float = 1.0,
        bitrate: int | None = None,
        encoder: str = "auto",
        camera_num: int = 0,
        hflip: bool = False,
        vflip: bool = False,
        picamera2: Callable[[int], Picamera2] = Picamera2,
    ) -> None:
        self.width, self.height = size
        self.fps = float(fps)
        self.colour = video_colour(*size)  # of its YUV: for the live view's BGR
        self.mask = PrivacyMask(masks)
        kind = choose_encoder(encoder, get_platform().name)
        self._camera = _open(picamera2, camera_num)
        try:
            self._configure(lores_size(*size), (hflip, vflip))
            gop = max(1, round(self.fps * keyframe_interval))
            if kind == "hardware":
                self._encoder = H264Encoder(bitrate=bitrate, repeat=True, iperiod=gop)
            else:
                # a Fraction: newer PyAV refuses a float frame rate
                rate = fractions.Fraction(self.fps).limit_denominator(1001)
                self._encoder = LibavH264Encoder(
                    bitrate=bitrate, repeat=True, iperiod=gop, framerate=rate
                )
            self.output = PacketOutput()
            self.stream_info = StreamInfo(self.width, self.height, self.fps)
            self._origin: int | None = None  # the first frame's sensor timestamp, ns
            self._camera.pre_callback = self._mask_request
            self._camera.start_encoder(self._encoder, self.output, name="main")
            self._camera.start()
        except (RuntimeError, OSError, ValueError) as err:
            self._camera.close()
            raise CameraError(f"Pi camera {camera_num}: cannot start it ({err})") from None
        self.encoder_kind = kind

    def _configure(self, lores: tuple[int, int], flips: tuple[bool, bool]) -> None:
        size = (self.width, self.height)
        streams = configure_streams(self._camera, size, self.fps, lores, flips)
        self.width, self.height = streams["main"]["size"]
        self._stride = streams["main"]["stride"]
        self.lores = streams["lores"]["size"]
        self._lores_stride = streams["lores"]["stride"]

    def _mask_request(self, request: "CompletedRequest") -> None:
        """picamera2's pre_callback: runs before any encoder or reader sees the request."""
        if self._origin is None:
            self._origin = request.get_metadata()["SensorTimestamp"]
        if not self.mask:
            return
        for name, (width, height), stride in (
            ("main", (self.width, self.height), self._stride),
            ("lores", self.lores, self._lores_stride),
        ):
            with MappedArray(request, name) as mapped:
                self.mask.apply_i420(mapped.array, width, height, stride)

    def frames(self) -> Iterator[Frame]:
        index = 0
        while True:
            stamp, (main, lores) = _capture(self._camera, ("main", "lores"))
            origin = self._origin if self._origin is not None else stamp
            yield Frame(
                None,
                (stamp - origin) / 1e9,
                index,
                i420=_i420(main, self.width, self.height, self._stride),
                grey=_plane(lores, *self.lores),
                packets=self.output.take(),
                masked=True,
            )
            index += 1

    def stop_encoder(self) -> list[EncodedPacket]:
        """Stop encoding; the packets the encoder still held (the end of a clip)."""
        if self._encoder is not None:
            encoder, self._encoder = self._encoder, None
            self._camera.stop_encoder(encoder)
        return self.output.take()

    def close(self) -> None:
        try:
            self.stop_encoder()
            self._camera.stop()
        finally:
            self._camera.close()


def _capture(camera: Picamera2, streams: Sequence[str]) -> tuple[int, list[np.ndarray]]:
    """The next request's sensor timestamp (ns) and a copy of each of ``streams``, the
    request released. Raises CameraError when the camera gives no more."""
    try:
        request = camera.capture_request()
    except (RuntimeError, OSError) as err:
        raise CameraError(f"Pi camera: no more frames ({err})") from None
    try:
        return request.get_metadata()["SensorTimestamp"], [request.make_array(n) for n in streams]
    finally:
        request.release()


class PiPictureCamera:
    """The Pi camera's pictures alone: its main stream as I420 frames (``frame.i420``), no
    encoder, no lores stream, no masks (the pipeline masks and encodes them, after they
    are turned); mirrored on the sensor by ``hflip`` and ``vflip``. Raises CameraError
    naming the camera if it cannot be opened or started."""

    def __init__(
        self,
        *,
        size: tuple[int, int] = (1280, 720),
        fps: float = 15.0,
        camera_num: int = 0,
        hflip: bool = False,
        vflip: bool = False,
        picamera2: Callable[[int], Picamera2] = Picamera2,
    ) -> None:
        self.fps = float(fps)
        self._camera = _open(picamera2, camera_num)
        try:
            streams = configure_streams(self._camera, size, self.fps, None, (hflip, vflip))
            self.width, self.height = streams["main"]["size"]
            self._stride = streams["main"]["stride"]
            self.colour = video_colour(self.width, self.height)  # see camera.colour_of
            self._camera.start()
        except (RuntimeError, OSError, ValueError) as err:
            self._camera.close()
            raise CameraError(f"Pi camera {camera_num}: cannot start it ({err})") from None

    def frames(self) -> Iterator[Frame]:
        index = 0
        origin: int | None = None  # the first frame's sensor timestamp, ns
        while True:
            stamp, (main,) = _capture(self._camera, ("main",))
            origin = stamp if origin is None else origin
            i420 = _i420(main, self.width, self.height, self._stride)
            yield Frame(None, (stamp - origin) / 1e9, index, i420=i420)
            index += 1

    def close(self) -> None:
        try:
            self._camera.stop()
        finally:
            self._camera.close()


# What a picture camera takes of the Pi camera's options; masks, encoder, bitrate and
# keyframe interval are the pipeline's then (it masks with the config's own masks).
PICTURE_OPTIONS = ("size", "fps", "camera_num", "picamera2")


def video_colour(width: int, height: int) -> ColourDescription:
    """The colour of the Pi camera's YUV at ``width`` x ``height``: what picamera2's
    ``create_video_configuration`` picks when not told, Rec. 709 from 1280x720 up and
    SMPTE 170M below (picamera2 0.3.38's source)."""
    return REC709 if width >= 1280 and height >= 720 else SMPTE170M


def open_pi_camera(*, orientation: Orientation | None = None, **options: Any) -> Camera:
    """The Pi camera with ``options`` (:class:`PiCamera`'s), its picture turned by
    ``orientation``: mirrored on the sensor where that does it all (0 or 180 degrees,
    any mirror), else a :class:`PiPictureCamera` mirrored on the sensor and given a
    quarter turn in software, for the pipeline to mask and encode. Raises CameraError
    for a quarter turn with ``encoder="hardware"`` (the Pi's encoder cannot take it)."""
    sensor, rest = (orientation or Orientation()).operation.on_sensor()
    hflip, vflip = sensor
    if rest.identity:
        return PiCamera(hflip=hflip, vflip=vflip, **options)
    if options.get("encoder") == "hardware":
        raise CameraError(
            "the Pi's hardware encoder cannot take a picture turned 90 or 270 degrees (it "
            "is turned in software, then encoded on the CPU): use encoder = auto or libav"
        )
    log.info("camera: the picture is turned a quarter in software and encoded on the CPU")
    kept = {key: value for key, value in options.items() if key in PICTURE_OPTIONS}
    return OrientedCamera(PiPictureCamera(hflip=hflip, vflip=vflip, **kept), rest)
