"""The frame loop: camera → privacy mask → motion → trigger → encoder → recorder.

    pipeline = Pipeline(store, settings, width, height, fps, wall_time=...)
    for frame in camera.frames():
        pipeline.process(frame)
    pipeline.finish()

Every frame is masked before anything else sees it (law 7): the encoder, the
thumbnail and the motion detector all get the masked frame. Bell presses and
PIR changes come in through :meth:`press_bell` and :meth:`pir` from any
thread; they are applied, in time order, before the next frame. The same loop
serves ``doorbell replay`` (a file, as fast as it decodes) and the service.
"""

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from doorbell import trigger
from doorbell.camera import EncodedPacket, Frame, StreamInfo, lores_size
from doorbell.codec import H264Encoder
from doorbell.config import PipelineSettings
from doorbell.motion import MotionDetector
from doorbell.privacy import PrivacyMask, polygon_mask
from doorbell.recorder import Recorded, Recorder
from doorbell.store import ClipStore


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
        self.lores = lores_size(width, height)
        zone = polygon_mask(settings.zones, *self.lores) if settings.zones else None
        self.detector = MotionDetector(*self.lores, settings.motion, zone)
        # A camera that encodes itself (``encoded``) sends packets with its frames.
        self.encoder: H264Encoder | None = None
        if encoded:
            stream = encoded
        else:
            self.encoder = H264Encoder(
                width, height, fps, keyframe_interval=settings.keyframe_interval
            )
            stream = self.encoder.stream_info()
        self._frame: Frame | None = None
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
        if self._frame is None:
            return None
        ok, jpeg = cv2.imencode(
            ".jpg", self._frame.image, [cv2.IMWRITE_JPEG_QUALITY, self.settings.thumbnail_quality]
        )
        return jpeg.tobytes() if ok else None

    def _grey(self, frame: Frame) -> np.ndarray:
        grey = frame.grey
        if grey is None:
            small = cv2.resize(frame.image, self.lores, interpolation=cv2.INTER_AREA)
            return cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
        if grey.shape[::-1] != self.lores:
            return cv2.resize(grey, self.lores, interpolation=cv2.INTER_AREA)
        return grey

    def process(self, frame: Frame) -> None:
        if not frame.masked:  # in place: nothing downstream sees the masked area
            self.mask.apply(frame.image)
        self._frame = frame
        result = self.detector.update(self._grey(frame))
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
        if self.encoder is not None:
            self.recorder.add(self.encoder.encode(frame.image, frame.at))
        else:
            self.recorder.add(frame.packets or ())
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
