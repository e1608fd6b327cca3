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
"""

import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from doorbell import trigger
from doorbell.camera import EncodedPacket, Frame, StreamInfo, lores_size
from doorbell.codec import FFmpegError, H264Encoder
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
    ) -> None:
        self.settings = settings
        self._on_motion = on_motion
        self.mask = PrivacyMask(settings.masks)
        # A camera that encodes itself (``encoded``) sends packets with its frames.
        self.encoder: H264Encoder | None = None
        if encoded:
            stream = encoded
            self.size = (width, height)
        else:
            self.size = encodable_size(width, height)
            self.encoder = _encoder(self.size, fps, settings.keyframe_interval)
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

    def _grey(self, frame: Frame, picture: np.ndarray | None) -> np.ndarray:
        grey = frame.grey
        if grey is None:
            source = picture if picture is not None else frame.image
            small = cv2.resize(source, self.lores, interpolation=cv2.INTER_AREA)
            return cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
        return self._fit_grey(grey)

    def _fit_grey(self, grey: np.ndarray) -> np.ndarray:
        if grey.shape[::-1] != self.lores:
            return cv2.resize(grey, self.lores, interpolation=cv2.INTER_AREA)
        return grey

    def _as_i420(self, frame: Frame) -> np.ndarray | None:
        """The frame's YUV 4:2:0 buffer when it can be encoded as it is: a frame that
        came as I420 at the recorded size, not yet converted to BGR (no conversion
        either way, half the bytes)."""
        width, height = self.size
        i420 = frame.i420
        if self.encoder is None or i420 is None or frame.has_image:
            return None
        return i420 if i420.shape == (height * 3 // 2, width) else None

    def process(self, frame: Frame) -> None:
        i420 = self._as_i420(frame)
        if i420 is not None:  # masked in place in I420; BGR is made only if asked for
            if not frame.masked:
                self.mask.apply_i420(i420, *self.size)
                frame.masked = True
            self._frame, self._picture = frame, None
            grey = frame.grey if frame.grey is not None else i420[: self.size[1]]
            result = self.detector.update(self._fit_grey(grey))
            self._step(frame, result, self.encoder.encode_i420(i420, frame.at))  # type: ignore[union-attr]
            return
        if not frame.masked:  # in place: nothing downstream sees the masked area
            self.mask.apply(frame.image)
        # what is recorded: the masked picture at a size the encoder takes
        picture = fit_picture(frame.image, self.size) if self.encoder is not None else None
        self._frame, self._picture = frame, picture
        result = self.detector.update(self._grey(frame, picture))
        if self.encoder is not None:
            assert picture is not None  # made above whenever the pipeline encodes
            packets = self.encoder.encode(picture, frame.at)
        else:
            packets = list(frame.packets or ())
        self._step(frame, result, packets)

    def _step(self, frame: Frame, result: MotionResult, packets: Sequence[EncodedPacket]) -> None:
        """The trigger's step for ``frame``: motion, presses and time in, clips out."""
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


def _encoder(size: tuple[int, int], fps: float, keyframe_interval: float) -> H264Encoder:
    """The H.264 encoder for ``size`` at ``fps``; PipelineError saying why if it refuses."""
    width, height = size
    if not (math.isfinite(fps) and 0 < fps <= 1000):
        raise PipelineError(f"a camera rate of {fps!r} frames a second cannot be recorded")
    try:
        return H264Encoder(width, height, fps, keyframe_interval=keyframe_interval)
    except FFmpegError as err:
        raise PipelineError(
            f"the H.264 encoder refused {width}x{height} at {fps:g} fps "
            f"({getattr(err, 'strerror', None) or err})"
        ) from None
