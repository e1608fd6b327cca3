"""The one composition root: camera, pipeline, GPIO, events, store and web, wired and run.

    service = Service(load_config("/etc/doorbell/doorbell.toml"))
    await service.run(stop)          # until ``stop`` is set (SIGINT/SIGTERM in the CLI)

Threads: the camera's frame loop runs on a thread of its own (frames →
pipeline → encrypted clips); gpiozero calls back on its threads; everything
else runs on the asyncio loop, in one TaskGroup. Threads hand events to the
loop's bus with ``call_soon_threadsafe``. Shutdown finishes the clip being
recorded before the store closes (the camera thread ends with
``pipeline.finish``).

Before first-run setup there is no recipient to encrypt to, so frames are
masked and dropped: nothing is recorded until the owner has a key.
"""

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

import cv2

from doorbell.camera import Camera, CameraError, Frame, open_camera
from doorbell.config import Config, split_listen
from doorbell.events import (
    BellPressed,
    CameraState,
    ClipFinished,
    ClipStarted,
    EventBus,
    MotionChanged,
    PirChanged,
)
from doorbell.gpio import DoorbellPins
from doorbell.pipeline import Pipeline
from doorbell.store import ClipStore, Keyring

log = logging.getLogger(__name__)
HOUSEKEEPING_SECONDS = 30.0


class LiveFrames:
    """The latest masked frame, as JPEG for the live view; counts who watches."""

    def __init__(self, on_viewers: Callable[[int], None], width: int = 640, quality: int = 70):
        self._on_viewers = on_viewers
        self._width, self._quality = width, quality
        self._lock = threading.Lock()
        self._frame: Frame | None = None
        self._jpeg: tuple[int, bytes] | None = None
        self.viewers = 0

    def offer(self, frame: Frame) -> None:
        """On the camera thread, after masking: keep a reference, encode only on demand."""
        self._frame = frame

    def latest_jpeg(self) -> tuple[int, bytes] | None:
        frame = self._frame
        if frame is None:
            return None
        with self._lock:
            if self._jpeg is None or self._jpeg[0] != frame.index:
                image = frame.image
                if image.shape[1] > self._width:
                    height = round(image.shape[0] * self._width / image.shape[1])
                    image = cv2.resize(image, (self._width, height), interpolation=cv2.INTER_AREA)
                ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self._quality])
                if not ok:
                    return None
                self._jpeg = (frame.index, jpeg.tobytes())
            return self._jpeg

    def watching(self, delta: int) -> None:
        with self._lock:
            self.viewers += delta
            viewers = self.viewers
        self._on_viewers(viewers)


def camera_options(config: Config, *, demo: bool = False) -> tuple[str, dict]:
    """The backend and its options for ``config`` (live pace, masks for the Pi camera)."""
    cam = config.camera
    if cam.backend == "synthetic":
        options = {"width": cam.width, "height": cam.height, "fps": cam.fps, "realtime": True}
        return "synthetic", options
    if cam.backend == "opencv":
        return "opencv", {"source": cam.source, "realtime": True, "loop": cam.loop or demo}
    return "picamera2", {
        "size": (cam.width, cam.height),
        "fps": cam.fps,
        "masks": config.pipeline.masks,
        "keyframe_interval": config.pipeline.keyframe_interval,
        "encoder": cam.encoder,
    }


class Service:
    """One doorbell. ``demo``: gpiozero mock pins and a bell button in the web page."""

    def __init__(
        self,
        config: Config,
        *,
        demo: bool = False,
        open_cam: Callable[[], Camera] | None = None,
        pin_factory: object = None,
        work_factor: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.demo = demo
        self.data_dir = Path(config.storage.data_dir)
        backend, options = camera_options(config, demo=demo)
        self._open_cam = open_cam or (lambda: open_camera(backend, **options))
        if demo and pin_factory is None:
            from gpiozero.pins.mock import MockFactory

            pin_factory = MockFactory()
        self._pin_factory = pin_factory
        self._work_factor = work_factor
        self._clock = clock
        self._stopping = threading.Event()
        self.camera_state = "starting"
        self.url: str | None = None
        self.tls_fingerprint: str | None = None
        self.pipeline: Pipeline | None = None
        self.pins: DoorbellPins | None = None
        self.bus: EventBus | None = None
        self.live = LiveFrames(self._viewers_changed)
        self._camera_clock = (0.0, time.monotonic())  # (frame time, monotonic) of the last frame

    # -- wiring --------------------------------------------------------------------------

    def _now_on_camera(self) -> float:
        """Camera time now: the last frame's time plus what has passed since it came."""
        at, seen = self._camera_clock
        return at + (time.monotonic() - seen)

    def _viewers_changed(self, viewers: int) -> None:
        self._update_led()

    def _update_led(self) -> None:
        if self.pins is not None and self.pipeline is not None:
            self.pins.set_indicator(
                recording=self.pipeline.recorder.recording, viewers=self.live.viewers
            )

    def _publish(self, event: object) -> None:
        if self.bus is not None:
            self.bus.publish_threadsafe(event)  # type: ignore[arg-type]

    def _pressed(self, _at: float) -> None:
        """gpiozero's thread: the bell. The clip and the browsers both hear of it."""
        if self.pipeline is not None:
            self.pipeline.press_bell(self._now_on_camera())
        self._publish(BellPressed(self._clock()))

    def _pir(self, active: bool, _at: float) -> None:
        if self.pipeline is not None:
            self.pipeline.pir(active, self._now_on_camera())
        self._publish(PirChanged(self._clock(), active))

    def _clip(self, kind: str, detail: object) -> None:
        self._update_led()
        if kind == "started":
            self._publish(ClipStarted(self._clock(), str(detail)))
        else:
            self._publish(ClipFinished(detail))  # type: ignore[arg-type]

    def press_mock_bell(self) -> None:
        """The demo's button: drive the mock bell pin low and high again."""
        assert self.pins is not None
        pin = self.pins.button.pin
        pin.drive_low()
        pin.drive_high()

    def status(self) -> dict:
        recording = self.pipeline is not None and self.pipeline.recorder.recording
        return {
            "camera": self.camera_state,
            "recording": recording,
            "live_viewers": self.live.viewers,
            "retention": "",
            "demo": self.demo,
        }

    # -- the camera thread ---------------------------------------------------------------

    def _frames(self, camera: Camera, pipeline: Pipeline, keyring: Keyring) -> None:
        tail: list = []
        try:
            for frame in camera.frames():
                if self._stopping.is_set():
                    break
                self._camera_clock = (frame.at, time.monotonic())
                if keyring.recipients_file.exists():
                    pipeline.process(frame)  # masks it first
                elif not frame.masked:
                    pipeline.mask.apply(frame.image)
                self.live.offer(frame)
            self.camera_state = "stopped" if self._stopping.is_set() else "ended"
        except CameraError as err:
            self.camera_state = f"failed: {err}"
            log.error("camera: %s", err)
        finally:
            stop_encoder = getattr(camera, "stop_encoder", None)
            if stop_encoder is not None:
                with contextlib.suppress(Exception):
                    tail = stop_encoder()
            try:
                pipeline.finish(tail)  # the clip being recorded is finished, not cut
            finally:
                camera.close()
                self._update_led()
                self._publish(CameraState(self._clock(), self.camera_state))

    # -- run -----------------------------------------------------------------------------

    async def run(
        self, stop: asyncio.Event, ready: Callable[["Service"], None] = lambda s: None
    ) -> None:
        """Run until ``stop`` is set or the camera ends; then shut down in order."""
        from aiohttp import web

        from doorbell.web import tls
        from doorbell.web.app import make_app
        from doorbell.web.context import WebContext

        loop = asyncio.get_running_loop()
        self.bus = EventBus(loop)
        keyring = Keyring.in_data_dir(self.data_dir)
        store = ClipStore(self.data_dir, keyring.recipients)
        for line in store.report.lines():
            log.warning("store: %s", line)
        try:
            camera = await asyncio.to_thread(self._open_cam)
        except BaseException:
            store.close()
            raise
        self.camera_state = "running"
        origin_wall, origin_cam = time.time(), 0.0
        self.pipeline = Pipeline(
            store,
            self.config.pipeline,
            camera.width,
            camera.height,
            camera.fps,
            wall_time=lambda t: origin_wall + (t - origin_cam),
            on_clip=self._clip,
            on_motion=lambda active, at: self._publish(MotionChanged(self._clock(), active)),
            encoded=getattr(camera, "stream_info", None),
        )
        self.pins = DoorbellPins(
            self.config.gpio,
            on_press=self._pressed,
            on_pir=self._pir,
            pin_factory=self._pin_factory,
        )
        host, port = split_listen(self.config.web.listen)
        ssl_context = None
        if tls.use_tls(self.config.web.tls, host):
            cert = tls.ensure_certificate(self.data_dir / "tls")
            self.tls_fingerprint = tls.fingerprint(cert)
            ssl_context = tls.server_context(cert)
        context = WebContext(
            store=store,
            keyring=keyring,
            settings=self.config.web,
            bus=self.bus,
            live=self.live,
            status=self.status,
            press_bell=self.press_mock_bell if self.demo else None,
            work_factor=self._work_factor,
            tls_fingerprint=self.tls_fingerprint,
            secure_cookies=ssl_context is not None,
            on_unlock=lambda identities: store.repair(identities),
        )
        app = make_app(context)
        runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await runner.setup()
        try:
            site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
            await site.start()
            bound = runner.addresses[0]
            shown = "localhost" if tls.is_loopback(host) else host
            self.url = f"{'https' if ssl_context else 'http'}://{shown}:{bound[1]}/"
            async with asyncio.TaskGroup() as group:
                frames = group.create_task(
                    asyncio.to_thread(self._frames, camera, self.pipeline, keyring)
                )
                housekeeping = group.create_task(self._housekeeping(app))
                ready(self)
                stopped = group.create_task(stop.wait())
                await asyncio.wait({frames, stopped}, return_when=asyncio.FIRST_COMPLETED)
                self._stopping.set()
                await frames  # finishes the clip being recorded
                housekeeping.cancel()
                stopped.cancel()
        finally:
            self._stopping.set()
            await runner.cleanup()
            self.pins.close()
            store.close()

    async def _housekeeping(self, app: object) -> None:
        from doorbell.web.context import SESSIONS

        while True:
            await asyncio.sleep(HOUSEKEEPING_SECONDS)
            app[SESSIONS].expire()  # type: ignore[index]
