"""The frame loop: camera → privacy mask → motion → trigger → encoder → recorder.

    pipeline = Pipeline(store, settings, width, height, fps, wall_time=...)
    for frame in camera.frames():
        pipeline.process(frame)
    pipeline.finish()

Every frame is masked before anything else sees it (law 7): the encoder, the
thumbnail and the motion detector all get the masked frame. Any picture size is
recorded: after the mask, a picture the H.264 encoder cannot take is cropped
or scaled to one it can (:func:`encodable_size`: even sides, 641x481 →
640x480), and motion and the thumbnail see that same picture. A pipeline that
cannot be built raises :class:`PipelineError` with the reason. Bell presses and
PIR changes come in through :meth:`press_bell` and :meth:`pir` from any
thread; they are applied, in time order, before the next frame. The same loop
serves ``doorbell replay`` (a file, as fast as it decodes) and the service.

Each picture is moved as few times as its source allows (:func:`frame_route`):

* a video file's decoded YUV 4:2:0 frame with no mask to paint: handed to the
  encoder as the decoder left it, motion reading its luma plane in place (no copy);
* with masks, or a camera's packed YUV 4:2:0 (a Pi's): the packed buffer, painted in
  place and handed over as it is (a decoded frame is copied out once, for a decoder's
  frame must not be painted);
* BGR (a webcam, the synthetic porch): painted, then one conversion to YUV 4:2:0
  (``cv2.cvtColor``); motion reads that luma.

Motion's low-resolution grey is the luma shrunk by :func:`shrink` (halvings, each
OpenCV's exact 2x2 mean, then one area resize). A BGR picture is made from YUV only
when a thumbnail is due or someone watches the live view.

The software encoder runs all the time, for the pre-roll ring. ``pre_roll_fps`` (0:
off, every frame) encodes only that many frames a second while nothing is recorded,
and every frame from the one a clip starts at (:func:`keeps_frame`): the pre-roll keeps
its length, its keyframes and its full size, at a lower rate. An empty 720p porch at 10
fps, in real time (``bench/frame_path_bench.py``): 4.2 CPU-s a minute with every frame,
3.4 at 5 a second, 2.7 at 2.5.
"""

import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from doorbell import trigger
from doorbell.camera import EncodedPacket, Frame, StreamInfo, lores_size
from doorbell.camera.colour import OPENCV_YUV, ColourDescription
from doorbell.camera.transform import i420_size
from doorbell.codec import DecodedPicture, FFmpegError, H264Encoder
from doorbell.config import PipelineSettings
from doorbell.errors import DoorbellError
from doorbell.motion import MotionDetector, MotionResult
from doorbell.privacy import PrivacyMask, polygon_mask
from doorbell.recorder import Recorded, Recorder
from doorbell.store import ClipStore

# The largest picture recorded; a larger one is scaled down to fit, its aspect kept.
# 4096 a side is the config's limit; 4096x2304 (36,864 macroblocks) is the largest
# frame of H.264 level 5.1, which browsers' decoders take.
MAX_SIDE = 4096
MAX_PIXELS = 4096 * 2304
# OpenCV's own worker threads: none. What it does here is small (a 320-wide grey for
# motion, one colour conversion, a thumbnail), and its idle workers spin in sched_yield
# waiting for the next call: replaying 120 s of 720p cost 0.6 CPU-s more with its
# default pool (2 threads on 2 cores), 7 % of the whole, for no gain in speed.
OPENCV_THREADS = 1


class PipelineError(DoorbellError, ValueError):
    """The pipeline cannot be built for this camera (its picture size, rate or encoder)."""


def encodable_size(width: int, height: int) -> tuple[int, int]:
    """The size a ``width`` x ``height`` picture is recorded at (pixels): both sides even
    (H.264 in 4:2:0 takes no odd side) and at least 2, at most :data:`MAX_SIDE` a side and
    :data:`MAX_PIXELS` in all (scaled down beyond, aspect kept).

    ``(641, 481)`` → ``(640, 480)``; ``(1, 1)`` → ``(2, 2)``; ``(10000, 10)`` → ``(4096, 4)``.
    """
    if width < 1 or height < 1:
        raise PipelineError(f"a camera picture of {width}x{height} pixels cannot be recorded")
    scale = min(1.0, MAX_SIDE / width, MAX_SIDE / height, math.sqrt(MAX_PIXELS / (width * height)))
    if scale < 1.0:
        width, height = int(width * scale), int(height * scale)
    return max(2, width - width % 2), max(2, height - height % 2)


def fit_picture(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image`` at ``size`` (width, height): itself if it is that size, cropped by the
    odd row and column if that is all it takes, else scaled (a camera that changed its
    size, or one too big or too small)."""
    height, width = image.shape[:2]
    if (width, height) == size:
        return image
    if 0 <= width - size[0] <= 1 and 0 <= height - size[1] <= 1:
        return image[: size[1], : size[0]]
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def shrink(plane: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A single-channel ``plane`` (HxW uint8, any row stride) at ``size`` (width, height),
    each output pixel the mean of the area it covers (``cv2.INTER_AREA``).

    Halved first while the plane is 4x the size or more (or exactly 2x), each halving
    OpenCV's exact 2x2 mean: 1280x720 → 320x180 in 0.08-0.2 ms against 0.45-0.7 ms for
    one area resize (x86, one thread), the same picture to within 1 grey level; where the
    sizes do not divide evenly (1366x768) each output pixel averages a slightly shifted
    area (a few levels apart on fine noise) at half the cost (1.5 ms against 3.2)."""
    width, height = size
    while True:
        rows, columns = plane.shape[:2]
        if rows % 2 or columns % 2:
            break
        if not (
            (columns >= 4 * width and rows >= 4 * height)
            or (columns, rows) == (2 * width, 2 * height)
        ):
            break
        plane = cv2.resize(plane, (columns // 2, rows // 2), interpolation=cv2.INTER_AREA)
    if plane.shape[1::-1] != size:
        plane = cv2.resize(plane, size, interpolation=cv2.INTER_AREA)
    return plane


# How a frame reaches the encoder (see the module): the decoder's frame as it is, a packed
# YUV 4:2:0 buffer, or a BGR picture converted once.
DECODED, I420, BGR = "decoded", "i420", "bgr"


def frame_route(
    size: tuple[int, int],
    masks: bool,
    *,
    decoded: tuple[int, int] | None,
    i420: tuple[int, int] | None,
    has_image: bool,
) -> str:
    """The cheapest way a frame goes to an encoder taking ``size`` (width, height):
    :data:`DECODED` when it has decoder planes of that size (``decoded``: their width,
    height), no packed or BGR copy made yet, and no mask to paint (``masks`` False);
    else :data:`I420` when it has, or can copy out, packed YUV 4:2:0 of that size
    (``i420``: its width, height, given or from ``decoded``) and no BGR picture (a BGR
    picture, once made, is what was painted); else :data:`BGR`."""
    if has_image:
        return BGR
    if decoded == size and i420 is None and not masks:
        return DECODED
    if (i420 or decoded) == size:
        return I420
    return BGR


def keeps_frame(at: float, kept_at: float | None, rate: float, fps: float, busy: bool) -> bool:
    """Whether the frame at ``at`` seconds is encoded. Every frame is while ``busy`` (a
    clip being recorded, or started or stopped at this frame) or when ``rate`` (the
    pipeline's ``pre_roll_fps``) is 0; else, while nothing is recorded, only enough for
    ``rate`` frames a second in the pre-roll ring: one when ``1 / rate`` seconds have
    passed since the last one kept (``kept_at``; None: none yet), less half a frame at
    the camera's ``fps`` (its times jitter). At 10 fps with a rate of 5: every second
    frame."""
    if busy or rate <= 0 or kept_at is None:
        return True
    return at >= kept_at + 1.0 / rate - 0.5 / fps


@dataclass(frozen=True)
class Event:
    kind: str  # bell | motion | pir
    start: float
    end: float | None = None


class Pipeline:
    """One camera's frames through to clips. Thread ownership: ``process`` and
    ``finish`` run on one thread (the camera's); ``press_bell`` and ``pir`` may
    be called from any thread (gpiozero's, the event loop's)."""

    def __init__(
        self,
        store: ClipStore,
        settings: PipelineSettings,
        width: int,
        height: int,
        fps: float,
        *,
        wall_time: Callable[[float], float],
        on_clip: Callable[[str, object], None] = lambda kind, clip: None,
        on_motion: Callable[[bool, float], None] = lambda active, at: None,
        encoded: StreamInfo | None = None,
        colour: ColourDescription = OPENCV_YUV,
    ) -> None:
        self.settings = settings
        self.colour = colour  # of the camera's YUV (camera.colour_of)
        self.fps = fps
        self._kept_at: float | None = None  # the last frame encoded
        self._on_motion = on_motion
        cv2.setNumThreads(OPENCV_THREADS)  # process-wide: see OPENCV_THREADS
        self.mask = PrivacyMask(settings.masks)
        # A camera that encodes itself (``encoded``) sends packets with its frames.
        self.encoder: H264Encoder | None = None
        if encoded:
            stream = encoded
            self.size = (width, height)
        else:
            self.size = encodable_size(width, height)
            self.encoder = _encoder(self.size, fps, settings.keyframe_interval, colour)
            stream = self.encoder.stream_info()
        self.lores = lores_size(*self.size)
        zone = polygon_mask(settings.zones, *self.lores) if settings.zones else None
        self.detector = MotionDetector(*self.lores, settings.motion, zone)
        self._frame: Frame | None = None
        self._picture: np.ndarray | None = None  # the last frame as recorded (self-encoded: None)
        self.recorder = Recorder(
            store,
            stream,
            pre_roll=settings.policy.pre_roll,
            wall_time=wall_time,
            thumbnail=self._thumbnail,
            on_clip=on_clip,
        )
        self._state = trigger.IDLE
        self._pending: list[trigger.Input] = []
        self._lock = threading.Lock()  # guards _pending: any thread adds, the camera's takes
        self.events: list[Event] = []
        self.frames = 0
        self.last_at = 0.0

    def press_bell(self, at: float) -> None:
        with self._lock:
            self._pending.append(trigger.Bell(at))

    def pir(self, active: bool, at: float) -> None:
        with self._lock:
            self._pending.append(trigger.Pir(at, active))

    def _thumbnail(self) -> bytes | None:
        if self._picture is not None:
            picture = self._picture
        elif self._frame is not None:
            picture = self._frame.image
        else:
            return None
        ok, jpeg = cv2.imencode(
            ".jpg", picture, [cv2.IMWRITE_JPEG_QUALITY, self.settings.thumbnail_quality]
        )
        return jpeg.tobytes() if ok else None

    def _fit_grey(self, grey: np.ndarray) -> np.ndarray:
        """A camera's own low-resolution grey (or a luma plane) at the motion size."""
        return grey if grey.shape[1::-1] == self.lores else shrink(grey, self.lores)

    def paint(self, frame: Frame) -> None:
        """Paint the privacy masks on ``frame`` in place and mark it masked; nothing if it
        is masked already or there is no mask.

        Painted: every form of the picture the frame holds (BGR, packed YUV 4:2:0), and if
        it holds neither, a packed copy of its decoded planes (the decoder's own frame is
        never painted); whatever is made from it afterwards is made from a painted form."""
        frame.matrix = self.colour.matrix  # for a BGR picture made of its YUV
        if frame.masked or not self.mask:
            frame.masked = True
            return
        if frame.has_image:
            self.mask.apply(frame.image)
        if frame.has_i420 or not frame.has_image:
            i420 = frame.i420
            assert i420 is not None  # a frame has a BGR image, an I420 buffer or planes
            self.mask.apply_i420(i420, *i420_size(i420))
        frame.masked = True

    def process(self, frame: Frame) -> None:
        """One frame through mask, motion, trigger and encoder (see the module)."""
        self._frame, self._picture = frame, None
        if self.encoder is None:  # a camera that encodes (and masks) itself
            self.paint(frame)
            grey = frame.grey if frame.grey is not None else _luma(frame)
            actions = self._decide(frame, self.detector.update(self._fit_grey(grey)))
            self._record(frame, list(frame.packets or ()), actions)
            return
        luma, i420 = self._prepare(frame)
        grey = frame.grey if frame.grey is not None else luma
        actions = self._decide(frame, self.detector.update(self._fit_grey(grey)))
        packets: list[EncodedPacket] = []
        if keeps_frame(
            frame.at,
            self._kept_at,
            self.settings.policy.pre_roll_fps,  # 0: every frame (see keeps_frame)
            self.fps,
            self._state.recording or bool(actions),
        ):
            self._kept_at = frame.at
            if i420 is not None:
                packets = self.encoder.encode_i420(i420, frame.at)
            else:
                assert isinstance(frame.decoded, DecodedPicture)  # the decoded route
                packets = self.encoder.encode_decoded(frame.decoded, frame.at)
        self._record(frame, packets, actions)

    def _prepare(self, frame: Frame) -> tuple[np.ndarray, np.ndarray | None]:
        """Paint ``frame`` and make what the encoder takes, by :func:`frame_route`: the
        full-size luma, and the packed YUV 4:2:0 to encode (None: encode the decoder's
        own frame)."""
        size = self.size
        decoded = frame.decoded
        packed = frame.i420 if frame.has_i420 else None  # never a copy just to look at
        route = frame_route(
            size,
            bool(self.mask) and not frame.masked,
            decoded=(decoded.width, decoded.height) if decoded is not None else None,
            i420=i420_size(packed) if packed is not None else None,
            has_image=frame.has_image,
        )
        if route == DECODED and isinstance(decoded, DecodedPicture):
            self.paint(frame)  # nothing to paint: it is marked masked (and its colour said)
            return decoded.luma(), None
        self.paint(frame)  # in place: nothing downstream sees the masked area
        if route in (I420, DECODED):
            i420 = frame.i420
            assert i420 is not None  # the route says it has or can copy one
            return i420[: size[1]], i420
        picture = fit_picture(frame.image, size)  # what is recorded
        self._picture = picture
        i420 = cv2.cvtColor(picture, cv2.COLOR_BGR2YUV_I420)  # the one conversion
        return i420[: size[1]], i420

    def _decide(self, frame: Frame, result: MotionResult) -> list[trigger.Action]:
        """The trigger's step for ``frame``: motion, presses and time in, what to do out."""
        with self._lock:
            inputs, self._pending = sorted(self._pending, key=lambda e: e.at), []
        if result.started:
            inputs.append(trigger.Motion(frame.at, True))
            self.events.append(Event("motion", frame.at))
            self._on_motion(True, frame.at)
        if result.stopped:
            inputs.append(trigger.Motion(frame.at, False))
            self._end_motion(frame.at)
            self._on_motion(False, frame.at)
        for item in inputs:
            if isinstance(item, trigger.Bell):
                self.events.append(Event("bell", item.at, item.at))
        inputs.append(trigger.Tick(frame.at))
        actions: list[trigger.Action] = []
        for item in inputs:
            self._state, more = trigger.step(self._state, item, self.settings.policy)
            actions.extend(more)
        return actions

    def _record(
        self, frame: Frame, packets: Sequence[EncodedPacket], actions: list[trigger.Action]
    ) -> None:
        """The frame's packets into the pre-roll ring (and the clip), then clips started
        and stopped: a clip starting now holds this frame."""
        self.recorder.add(packets)
        self.recorder.apply(actions)
        self.frames += 1
        self.last_at = frame.at

    def _end_motion(self, at: float) -> None:
        for i in range(len(self.events) - 1, -1, -1):
            event = self.events[i]
            if event.kind == "motion" and event.end is None:
                self.events[i] = Event("motion", event.start, at)
                return

    def finish(self, tail: Sequence[EncodedPacket] = ()) -> list[Recorded]:
        """End of input: close the clip being recorded (with every frame so far).

        ``tail`` is what a camera that encodes itself still had in its encoder.
        """
        self.recorder.add(self.encoder.flush() if self.encoder is not None else tail)
        self.recorder.stop(self.last_at)
        self._end_motion(self.last_at)
        return self.recorder.finished


def _luma(frame: Frame) -> np.ndarray:
    """The frame's full-size luma: the Y plane of its YUV 4:2:0 (in place), or its BGR
    picture made grey."""
    if frame.has_image:
        return cv2.cvtColor(frame.image, cv2.COLOR_BGR2GRAY)
    if frame.decoded is not None and not frame.has_i420:
        return frame.decoded.luma()
    i420 = frame.i420
    assert i420 is not None  # a frame has a BGR image, an I420 buffer or planes
    return i420[: i420.shape[0] * 2 // 3]


def _encoder(
    size: tuple[int, int], fps: float, keyframe_interval: float, colour: ColourDescription
) -> H264Encoder:
    """The H.264 encoder for ``size`` at ``fps``, its pictures' YUV of ``colour`` (see
    camera.colour_of); PipelineError saying why if it refuses."""
    width, height = size
    if not (math.isfinite(fps) and 0 < fps <= 1000):
        raise PipelineError(f"a camera rate of {fps!r} frames a second cannot be recorded")
    try:
        return H264Encoder(width, height, fps, keyframe_interval=keyframe_interval, colour=colour)
    except FFmpegError as err:
        raise PipelineError(
            f"the H.264 encoder refused {width}x{height} at {fps:g} fps "
            f"({getattr(err, 'strerror', None) or err})"
        ) from None
