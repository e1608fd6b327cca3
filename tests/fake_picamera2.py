"""picamera2 off a Pi: stubs for its two C bindings, and a small camera in place of libcamera.

Only ``libcamera`` and ``pykms`` (the C++ bindings, which exist only on a
Pi) are stubbed. Everything else is picamera2's own code: its encoders
(``LibavH264Encoder``), ``Output``, ``CompletedRequest``, ``MappedArray``,
``Helpers`` and allocator base class. :class:`FakePicamera2` stands where
libcamera's camera would: it has the part of ``Picamera2``'s API that the
doorbell uses, turns synthetic BGR pictures into YUV 4:2:0 buffers in real
shared memory (memfd + mmap, as the DMA heap gives on a Pi), and runs each
completed request through ``pre_callback`` and the encoders in the same
order picamera2's camera thread does.
"""

import enum
import mmap
import os
import sys
import threading
import types
from collections.abc import Callable

import cv2
import numpy as np

SENSOR_EPOCH_NS = 7_000_000_000_000  # sensor timestamps count from boot, not from zero


# --- the C bindings ------------------------------------------------------------------------


def _libcamera() -> types.ModuleType:
    lc = types.ModuleType("libcamera")

    class Transform:
        def __init__(self, hflip: int = 0, vflip: int = 0, transpose: int = 0) -> None:
            self.hflip, self.vflip, self.transpose = hflip, vflip, transpose

        def __hash__(self) -> int:
            return hash((self.hflip, self.vflip, self.transpose))

        def __eq__(self, other: object) -> bool:
            return isinstance(other, Transform) and hash(self) == hash(other)

        def __str__(self) -> str:
            return f"Transform(hflip={self.hflip}, vflip={self.vflip})"

    class ColorSpace:
        def __init__(self, name: str = "Sycc") -> None:
            self.primaries = self.transferFunction = self.ycbcrEncoding = self.range = name

        def __str__(self) -> str:
            return self.primaries

        def __hash__(self) -> int:
            return hash(self.primaries)

    for name in ("Sycc", "Smpte170m", "Rec709", "Raw"):
        setattr(ColorSpace, name, staticmethod(lambda name=name: ColorSpace(name)))

    class Size:
        def __init__(self, width: int = 0, height: int = 0) -> None:
            self.width, self.height = width, height

    class Rectangle:
        def __init__(self, x: int = 0, y: int = 0, width: int = 0, height: int = 0) -> None:
            self.x, self.y, self.width, self.height = x, y, width, height

    class ControlId:
        def __init__(self, name: str) -> None:
            self.name = name

        def __repr__(self) -> str:
            return self.name

    controls = types.ModuleType("libcamera.controls")
    for name in ("SensorTimestamp", "ExposureTime", "AnalogueGain", "FrameDurationLimits"):
        setattr(controls, name, ControlId(name))
    controls.draft = types.SimpleNamespace()
    lc.controls = controls
    lc.properties = types.SimpleNamespace(draft=types.SimpleNamespace())
    lc.Transform, lc.ColorSpace, lc.Size, lc.Rectangle = Transform, ColorSpace, Size, Rectangle
    lc.Orientation = enum.Enum(
        "Orientation",
        "Rotate0 Rotate0Mirror Rotate180 Rotate180Mirror "
        "Rotate90 Rotate90Mirror Rotate270 Rotate270Mirror",
    )
    lc.StreamRole = enum.Enum("StreamRole", "Raw StillCapture VideoRecording Viewfinder")
    lc.ControlType = enum.Enum("ControlType", "Bool Byte Integer32 Integer64 Float String")
    # C++ types picamera2 names in annotations and checks; nothing here constructs them
    for name in (
        "Camera",
        "CameraManager",
        "CameraConfiguration",
        "FrameBuffer",
        "FrameBufferAllocator",
        "FrameMetadata",
        "PixelFormat",
        "Request",
        "SensorConfiguration",
        "Stream",
        "StreamConfiguration",
    ):
        setattr(lc, name, type(name, (), {"__module__": "libcamera"}))
    lc._libcamera = types.SimpleNamespace(ColorSpace=ColorSpace, Transform=Transform)
    return lc


def install_stubs() -> None:
    """Put the stand-ins for ``libcamera`` and ``pykms`` where ``import`` finds them."""
    if "libcamera" not in sys.modules:
        lc = _libcamera()
        sys.modules["libcamera"] = lc
        sys.modules["libcamera.controls"] = lc.controls
    if "pykms" not in sys.modules:
        pykms = types.ModuleType("pykms")
        pykms.PixelFormat = enum.Enum(
            "PixelFormat", "ABGR8888 BGR888 NV12 RGB888 XBGR8888 XRGB8888 YUV420 YUYV YVU420 YVYU"
        )
        sys.modules["pykms"] = pykms


install_stubs()

from picamera2.allocators.allocator import Allocator, Sync  # noqa: E402
from picamera2.request import CompletedRequest, Helpers  # noqa: E402

# --- shared memory, as the DMA heap gives it -----------------------------------------------


class FrameBuffer:
    """libcamera's FrameBuffer: one plane in one file descriptor."""

    def __init__(self, size: int) -> None:
        self.fd = os.memfd_create("camera-buffer")
        os.ftruncate(self.fd, size)
        self.size = size

    def close(self) -> None:
        os.close(self.fd)


class SharedMemoryAllocator(Allocator):
    """picamera2's allocator contract, over memfd instead of a DMA heap.

    Like ``DmaAllocator``, buffers stay mapped for their whole life
    (``mapped_buffers``) and a sync hands out that mapping.
    """

    class MappedSync(Sync):
        def __init__(
            self, allocator: "SharedMemoryAllocator", fb: FrameBuffer, write: bool
        ) -> None:
            self.allocator, self.fb = allocator, fb

        def __enter__(self) -> mmap.mmap:
            return self.allocator.mapped_buffers[self.fb]

        def __exit__(self, *exc: object) -> None:
            pass

    def __init__(self) -> None:
        super().__init__()
        self.sync = SharedMemoryAllocator.MappedSync
        self.mapped_buffers: dict[FrameBuffer, mmap.mmap] = {}

    def new(self, size: int) -> FrameBuffer:
        fb = FrameBuffer(size)
        self.mapped_buffers[fb] = mmap.mmap(fb.fd, size)
        return fb

    def close(self) -> None:
        for fb, memory in self.mapped_buffers.items():
            memory.close()
            fb.close()
        self.mapped_buffers.clear()


class LibcameraRequest:
    """libcamera's Request: a buffer per stream and the metadata of one exposure."""

    def __init__(self, buffers: dict, metadata: dict) -> None:
        self.buffers, self.metadata = buffers, metadata


# --- the camera -----------------------------------------------------------------------------


def _stride(width: int, align: int) -> int:
    return -(-width // align) * align


def write_i420(memory: mmap.mmap, bgr: np.ndarray, stride: int) -> None:
    """Write ``bgr`` into a camera buffer as padded YUV 4:2:0 (rows of ``stride`` bytes)."""
    height, width = bgr.shape[:2]
    i420 = cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420).reshape(-1)
    out = np.frombuffer(memory, np.uint8)
    out[:] = 0x55  # padding: never part of a picture
    y_size = width * height
    out[: stride * height].reshape(height, stride)[:, :width] = i420[:y_size].reshape(height, width)
    cw, ch, cstride = width // 2, height // 2, stride // 2
    for plane in range(2):
        src = i420[y_size + plane * cw * ch :][: cw * ch].reshape(ch, cw)
        start = stride * height + plane * cstride * ch
        out[start : start + cstride * ch].reshape(ch, cstride)[:, :cw] = src


class FakePicamera2:
    """The part of ``Picamera2``'s API the doorbell uses, over a source of BGR pictures.

    ``source(at)`` draws the scene at ``at`` seconds; the sensor runs at
    ``fps``. ``align`` is the row alignment of the buffers (padding on the
    right, as on a real Pi).
    """

    def __init__(
        self,
        camera_num: int = 0,
        *,
        source: Callable[[float], np.ndarray],
        fps: float = 15.0,
        align: int = 64,
        fail_after: int | None = None,
    ) -> None:
        self.camera_num = camera_num
        self._source, self._fps, self._align = source, fps, align
        self._fail_after = fail_after
        self.request_lock = threading.Lock()
        self.lock = threading.Lock()
        self.stop_count = self.configure_count = 0
        self.camera = None  # no libcamera camera behind it: requests are not queued again
        self.started = False
        self.closed = False
        self.camera_config: dict | None = None
        self.stream_map: dict = {}
        self._buffers: dict[str, list[FrameBuffer]] = {}
        self.allocator = SharedMemoryAllocator()
        self.helpers = Helpers(self)
        self.pre_callback: Callable | None = None
        self.encoders: set = set()
        self.frame_count = 0

    def create_video_configuration(
        self,
        main: dict | None = None,
        lores: dict | None = None,
        controls: dict | None = None,
        display: str | None = "main",
        encode: str = "main",
        buffer_count: int = 6,
        transform: object = None,
    ) -> dict:
        from libcamera import Transform

        return {
            "use_case": "video",
            "buffer_count": buffer_count,
            "main": {"format": "XBGR8888", "size": (1280, 720)} | (main or {}),
            "lores": dict(lores) if lores else None,
            "controls": dict(controls or {}),
            "display": display,
            "encode": encode,
            "transform": transform if transform is not None else Transform(),
        }

    def configure(self, config: dict) -> None:
        config = {k: (dict(v) if isinstance(v, dict) else v) for k, v in config.items()}
        if config["transform"].transpose:
            # libcamera adjusts what a Pi's sensor cannot do: it mirrors, never transposes
            config["transform"] = type(config["transform"])(
                hflip=config["transform"].hflip, vflip=config["transform"].vflip
            )
        for name in ("main", "lores"):
            stream = config.get(name)
            if stream is None:
                continue
            if stream["format"] != "YUV420":
                raise RuntimeError(f"the fake camera only makes YUV420, not {stream['format']}")
            width, height = stream["size"]
            stream["stride"] = _stride(width, self._align)
            stream["framesize"] = stream["stride"] * height * 3 // 2
            self.stream_map[name] = name
            # picamera2 cycles through buffer_count buffers per stream
            self._buffers[name] = [
                self.allocator.new(stream["framesize"]) for _ in range(config["buffer_count"])
            ]
        self.camera_config = config
        self.configure_count += 1

    def camera_configuration(self) -> dict | None:
        return self.camera_config

    def start_encoder(self, encoder, output=None, pts=None, quality=None, name=None) -> None:
        name = name or self.camera_config["encode"]
        stream = self.camera_config[name]
        if output is not None:
            encoder.output = output
        encoder.name = name
        encoder.width, encoder.height = stream["size"]
        encoder.format = stream["format"]
        encoder.stride = stream["stride"]
        encoder.start(quality=quality)
        self.encoders.add(encoder)

    def stop_encoder(self, encoders=None) -> None:
        if encoders is None:
            encoders = list(self.encoders)
        elif not isinstance(encoders, (list, set)):
            encoders = [encoders]
        for encoder in encoders:
            encoder.stop()
            self.encoders.discard(encoder)

    def start(self) -> None:
        if self.camera_config is None:
            raise RuntimeError("Camera has not been configured")
        self.started = True

    def stop(self) -> None:
        self.started = False
        self.stop_count += 1

    def close(self) -> None:
        self.stop()
        self.allocator.close()
        self.closed = True

    def _completed_request(self) -> CompletedRequest:
        at = self.frame_count / self._fps
        picture = self._source(at)
        transform = self.camera_config["transform"]  # the sensor reads out mirrored
        if transform.hflip:
            picture = picture[:, ::-1]
        if transform.vflip:
            picture = picture[::-1]
        buffers = {}
        for name in ("main", "lores"):
            stream = self.camera_config.get(name)
            if stream is None:
                continue
            pool = self._buffers[name]
            fb = pool[self.frame_count % len(pool)]
            image = picture if name == "main" else cv2.resize(picture, stream["size"])
            if image.shape[1::-1] != tuple(stream["size"]):
                image = cv2.resize(image, stream["size"])
            write_i420(self.allocator.mapped_buffers[fb], image, stream["stride"])
            buffers[name] = fb
        from libcamera import controls

        stamp = SENSOR_EPOCH_NS + round(self.frame_count * 1e9 / self._fps)
        self.frame_count += 1
        return CompletedRequest(LibcameraRequest(buffers, {controls.SensorTimestamp: stamp}), self)

    def capture_request(self) -> CompletedRequest:
        """The next frame, after ``pre_callback`` and the encoders have had it."""
        if not self.started:
            raise RuntimeError("Camera is not running")
        if self._fail_after is not None and self.frame_count >= self._fail_after:
            raise RuntimeError("Camera frontend has timed out!")
        request = self._completed_request()
        if self.pre_callback:
            self.pre_callback(request)
        request.acquire()  # the application's reference
        for encoder in self.encoders:
            encoder.encode(encoder.name, request)
        request.release()  # the camera thread's reference
        return request
