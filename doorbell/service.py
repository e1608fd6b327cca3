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

The camera may fail to open, die, or (a file) end: the clip being recorded is
finished, and the camera is opened again after 0.5, 1, 2, 4 … seconds (at most
30) while the web pages, the bell and the status keep working. systemd hears
READY when the pages are up, STATUS whenever the camera or the disk changes,
WATCHDOG only while frames arrive or a reconnect is under way (a camera thread
stuck in a driver gets the service restarted), and STOPPING at the end.
Retention runs at start, every hour and before each clip (``store``).
"""

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

import cv2

from doorbell.camera import Camera, Frame, open_camera
from doorbell.config import Config, StorageSettings, split_listen
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
from doorbell.store import ClipStore, Keyring, Rules
from doorbell.store.retention import DAY, GB, MB
from doorbell.systemd import Notifier

log = logging.getLogger(__name__)
HOUSEKEEPING_SECONDS = 30.0
RETENTION_SECONDS = 3600.0
RECONNECT_FIRST, RECONNECT_CAP = 0.5, 30.0
STALE_SECONDS = 10.0  # no frame for this long, and no reconnect under way: stuck
BELL_WAIT = 30.0  # a press while the camera (re)starts is recorded if it is back within this
STOP_GRACE = 4.0  # seconds the camera thread gets to finish the clip on stop (systemd: 5)


def reconnect_delay(attempt: int) -> float:
    """Seconds before reopening the camera after ``attempt`` failures in a row (0-based)."""
    return min(RECONNECT_CAP, RECONNECT_FIRST * 2 ** min(attempt, 16))


def camera_healthy(now: float, alive_at: float, reconnecting: bool) -> bool:
    """Whether to ping the watchdog: frames arriving, or a reconnect in progress.

    ``alive_at`` is the last frame, or the start of the last attempt to open the
    camera. Attempts come at most 30 s apart, so a reconnect silent for longer
    than that (an open hung in the driver) is stuck too."""
    limit = RECONNECT_CAP + STALE_SECONDS if reconnecting else STALE_SECONDS
    return now - alive_at < limit


def retention_rules(storage: StorageSettings) -> Rules:
    return Rules(
        max_age=storage.max_age_days * DAY,
        quota=round(storage.quota_gb * GB),
        min_free=storage.min_free_mb * MB,
    )


def describe_retention(storage: StorageSettings) -> str:
    """The rules in words, for the status page."""
    parts = [f"clips older than {storage.max_age_days} days are deleted"]
    if storage.quota_gb:
        parts.append(f"the oldest go when all clips pass {storage.quota_gb:g} GB")
    if storage.min_free_mb:
        parts.append(f"or when the disk has under {storage.min_free_mb} MB free")
    return ", ".join(parts) + "; kept clips are never deleted"


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
        monotonic: Callable[[], float] = time.monotonic,
        wait: Callable[[float], object] | None = None,
        notifier: Notifier | None = None,
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
        self._monotonic = monotonic
        self._stopping = threading.Event()
        self._wait = wait or self._stopping.wait
        self.notifier = notifier if notifier is not None else Notifier.from_environment()
        self.camera_state = "starting"
        self.reconnecting = True  # opening the camera counts as a reconnect under way
        self._alive_at = monotonic()  # the last frame, or the last attempt to open the camera
        self.store: ClipStore | None = None
        self.url: str | None = None
        self.tls_fingerprint: str | None = None
        self.pipeline: Pipeline | None = None
        self.pins: DoorbellPins | None = None
        self.bus: EventBus | None = None
        self.live = LiveFrames(self._viewers_changed)
        # (frame time, monotonic) of this camera session's last frame; None before its first
        self._camera_clock: tuple[float, float] | None = None
        self._bell_waiting: float | None = None  # monotonic time of a press before a first frame

    # -- wiring --------------------------------------------------------------------------

    def _now_on_camera(self) -> float | None:
        """Camera time now: the last frame's time plus what has passed since it came;
        None while the camera has not delivered a frame (each session has its own clock)."""
        if self._camera_clock is None:
            return None
        at, seen = self._camera_clock
        return at + (self._monotonic() - seen)

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
        at = self._now_on_camera()
        if at is None:
            self._bell_waiting = self._monotonic()  # the camera is (re)starting: see _session
        elif self.pipeline is not None:
            self.pipeline.press_bell(at)
        self._publish(BellPressed(self._clock()))

    def _pir(self, active: bool, _at: float) -> None:
        at = self._now_on_camera()
        if self.pipeline is not None and at is not None:
            self.pipeline.pir(active, at)
        self._publish(PirChanged(self._clock(), active))

    def _clip(self, kind: str, detail: object) -> None:
        self._update_led()
        self.notifier.status(self.status_line())
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

    def _warnings(self) -> list[str]:
        found = []
        plan = self.store.last_prune if self.store is not None else None
        if plan is not None and plan.warning:
            found.append(plan.warning)
        if self.pipeline is not None and self.pipeline.recorder.disk_full:
            found.append("the disk is full: nothing is being recorded")
        return found

    def status(self) -> dict:
        recording = self.pipeline is not None and self.pipeline.recorder.recording
        return {
            "camera": self.camera_state,
            "recording": recording,
            "live_viewers": self.live.viewers,
            "retention": describe_retention(self.config.storage),
            "warnings": self._warnings(),
            "demo": self.demo,
        }

    def status_line(self) -> str:
        """One line for systemd's STATUS= (``systemctl status doorbell``)."""
        recording = self.pipeline is not None and self.pipeline.recorder.recording
        parts = [f"camera {self.camera_state}"]
        if recording:
            parts.append("recording")
        return "; ".join(parts + self._warnings())

    def _set_camera_state(self, state: str, reconnecting: bool) -> None:
        self.camera_state = state
        self.reconnecting = reconnecting
        self.notifier.status(self.status_line())
        self._publish(CameraState(self._clock(), state))

    def watchdog_tick(self) -> bool:
        """Ping systemd's watchdog if the camera is healthy; True if it was pinged."""
        if camera_healthy(self._monotonic(), self._alive_at, self.reconnecting):
            self.notifier.watchdog()
            return True
        log.error("camera: stuck (no frame, no reconnect attempt); not pinging the watchdog")
        return False

    # -- the camera thread ---------------------------------------------------------------

    def _camera_loop(self, store: ClipStore, keyring: Keyring) -> None:
        """Open the camera, run it, and when it fails or ends open it again, until stop."""
        attempt = 0
        while not self._stopping.is_set():
            self.reconnecting = True
            self._alive_at = self._monotonic()
            try:
                camera = self._open_cam()
            except Exception as err:  # a camera that will not open is reported, not fatal
                reason = str(err) or type(err).__name__
            else:
                frames, reason = self._session(camera, store, keyring)
                if frames:
                    attempt = 0
            if self._stopping.is_set():
                break
            delay = reconnect_delay(attempt)
            attempt += 1
            log.warning("camera: %s; trying again in %g s", reason, delay)
            self._set_camera_state(
                f"reconnecting in {delay:g} s (attempt {attempt}): {reason}", reconnecting=True
            )
            self._wait(delay)
        self._set_camera_state("stopped", reconnecting=False)

    def _session(self, camera: Camera, store: ClipStore, keyring: Keyring) -> tuple[int, str]:
        """Frames from one opened camera until it ends, fails or stop; the clip being
        recorded is finished. Returns the frames seen and why it ended."""
        origin_wall = time.time()
        origin_cam: list[float] = []
        pipeline = Pipeline(
            store,
            self.config.pipeline,
            camera.width,
            camera.height,
            camera.fps,
            wall_time=lambda t: origin_wall + (t - (origin_cam[0] if origin_cam else t)),
            on_clip=self._clip,
            on_motion=lambda active, at: self._publish(MotionChanged(self._clock(), active)),
            encoded=getattr(camera, "stream_info", None),
        )
        self.pipeline = pipeline  # its clock starts at its first frame (_camera_clock is None)
        self._set_camera_state("running", reconnecting=False)
        count, reason, tail = 0, "the video ended", []
        try:
            for frame in camera.frames():
                if self._stopping.is_set():
                    break
                if not origin_cam:
                    origin_cam.append(frame.at)
                count += 1
                now = self._monotonic()
                self._camera_clock = (frame.at, now)
                self._alive_at = now
                if count == 1:  # a press while the camera was (re)starting begins here
                    waiting, self._bell_waiting = self._bell_waiting, None
                    if waiting is not None and now - waiting < BELL_WAIT:
                        pipeline.press_bell(frame.at)
                if keyring.recipients_file.exists():
                    pipeline.process(frame)  # masks it first
                elif not frame.masked:
                    pipeline.mask.apply(frame.image)
                self.live.offer(frame)
        except Exception as err:  # the camera died: finish the clip, then reconnect
            reason = str(err) or type(err).__name__
            log.error("camera: %s", reason)
        finally:
            self._camera_clock = None  # presses until the next session's first frame wait
            stop_encoder = getattr(camera, "stop_encoder", None)
            if stop_encoder is not None:
                with contextlib.suppress(Exception):
                    tail = stop_encoder()
            try:
                pipeline.finish(tail)  # the clip being recorded is finished, not cut
            except Exception:
                log.exception("finishing the clip failed; it stays partial, recovered at unlock")
            finally:
                with contextlib.suppress(Exception):
                    camera.close()
                self._update_led()
        return count, reason

    # -- run -----------------------------------------------------------------------------

    async def run(
        self, stop: asyncio.Event, ready: Callable[["Service"], None] = lambda s: None
    ) -> None:
        """Run until ``stop`` is set; then finish the clip and shut down in order."""
        from aiohttp import web

        from doorbell.web import tls
        from doorbell.web.app import make_app
        from doorbell.web.context import WebContext

        loop = asyncio.get_running_loop()
        self.bus = EventBus(loop)
        keyring = Keyring.in_data_dir(self.data_dir)
        store = ClipStore(
            self.data_dir, keyring.recipients, retention=retention_rules(self.config.storage)
        )
        self.store = store
        for line in store.report.lines():
            log.warning("store: %s", line)
        runner = None
        thread: threading.Thread | None = None
        try:
            self.pins = DoorbellPins(
                self.config.gpio,
                on_press=self._pressed,
                on_pir=self._pir,
                pin_factory=self._pin_factory,
            )
            await asyncio.to_thread(store.prune)
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
            site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
            await site.start()
            bound = runner.addresses[0]
            shown = "localhost" if tls.is_loopback(host) else host
            self.url = f"{'https' if ssl_context else 'http'}://{shown}:{bound[1]}/"
            camera_done = loop.create_future()

            def camera_thread() -> None:
                try:
                    self._camera_loop(store, keyring)
                finally:
                    loop.call_soon_threadsafe(
                        lambda: camera_done.done() or camera_done.set_result(None)
                    )

            # A daemon thread: a camera stuck in its driver cannot keep the process alive.
            thread = threading.Thread(target=camera_thread, name="camera", daemon=True)
            thread.start()
            async with asyncio.TaskGroup() as group:
                background = [
                    group.create_task(self._housekeeping(app)),
                    group.create_task(self._watchdog()),
                ]
                self.notifier.ready(self.status_line())
                ready(self)
                await stop.wait()
                self.notifier.stopping()
                self._stopping.set()
                try:  # the camera thread finishes the clip being recorded
                    await asyncio.wait_for(asyncio.shield(camera_done), STOP_GRACE)
                except TimeoutError:
                    log.error("the camera did not stop in %g s; its clip stays partial", STOP_GRACE)
                for task in background:
                    task.cancel()
        finally:
            self._stopping.set()
            if runner is not None:
                await runner.cleanup()
            if self.pins is not None:
                self.pins.close()
            if thread is None or not thread.is_alive():
                store.close()  # else the process is about to end under a stuck camera

    async def _housekeeping(self, app: object) -> None:
        from doorbell.web.context import SESSIONS

        since_prune = 0.0
        while True:
            await asyncio.sleep(HOUSEKEEPING_SECONDS)
            app[SESSIONS].expire()  # type: ignore[index]
            since_prune += HOUSEKEEPING_SECONDS
            if since_prune >= RETENTION_SECONDS and self.store is not None:
                since_prune = 0.0
                await asyncio.to_thread(self.store.prune)
                self.notifier.status(self.status_line())

    async def _watchdog(self) -> None:
        interval = self.notifier.watchdog_interval
        if interval is None:
            return
        while True:
            self.watchdog_tick()
            await asyncio.sleep(interval)
