"""The one composition root: camera, pipeline, GPIO, events, store and web, wired and run.

    service = Service(load_config("/etc/doorbell/doorbell.toml"))
    await service.run(stop)          # until ``stop`` is set (SIGINT/SIGTERM in the CLI)

Wiring only: the parts do the work. The camera thread
(:class:`~doorbell.camera_loop.CameraLoop`: frames → pipeline → encrypted
clips, reconnects) runs on a thread of its own; gpiozero calls back on its
threads; everything else runs on the asyncio loop, in one TaskGroup. Threads
hand events to the loop's bus with ``call_soon_threadsafe``. Shutdown
finishes the clip being recorded before the store closes.

systemd hears READY when the pages are up, STATUS whenever the camera or the
disk changes, WATCHDOG only while frames arrive or a reconnect is under way (a
camera thread stuck in a driver gets the service restarted), and STOPPING at
the end. Retention runs at start, every hour and before each clip
(``store``); idle web sessions are locked by the web app's own task.
"""

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from doorbell import clock as clocks
from doorbell.camera import Camera, Orientation, colour_of, encoded_stream, open_camera
from doorbell.camera_loop import CameraLoop, WallTime
from doorbell.config import Config, split_listen
from doorbell.errors import DoorbellError
from doorbell.events import (
    BellPressed,
    CameraState,
    ClipFinished,
    ClipStarted,
    Event,
    EventBus,
    MotionChanged,
    PirChanged,
)
from doorbell.faults import storage_failure, storage_fault
from doorbell.gpio import DoorbellPins
from doorbell.live import LiveFrames
from doorbell.outbound import Outbound, page_address
from doorbell.owners import Owners, SetupCode
from doorbell.pipeline import Pipeline
from doorbell.status import describe_retention, fault_lines
from doorbell.store import Clip, ClipStore, Keyring
from doorbell.store.keyring import KeptRecipients
from doorbell.store.retention import retention_rules
from doorbell.systemd import Notifier

log = logging.getLogger(__name__)
RETENTION_SECONDS = 3600.0  # retention runs at start, every hour and before each clip
MONITOR_SECONDS = 1.0  # how often the state is looked at for changes no event reports (a stall)
CLOCK_SECONDS = 10.0  # how often clips of uncertain time are corrected, once the clock is set
STOP_GRACE = 4.0  # seconds the camera thread gets to finish the clip on stop (systemd: 5)


class DataFolderError(DoorbellError):
    """The data folder cannot be written when the doorbell starts (read-only, failing)."""


def camera_options(config: Config, *, demo: bool = False) -> tuple[str, dict]:
    """The backend and its options for ``config`` (live pace, masks for the Pi camera)."""
    cam = config.camera
    turned = {"orientation": Orientation.from_settings(cam)}  # before any mask
    if cam.backend == "synthetic":
        size = {"width": cam.width, "height": cam.height, "fps": cam.fps}
        return "synthetic", {**size, "realtime": True, **turned}
    if cam.backend == "opencv":
        loop = cam.loop or demo
        return "opencv", {"source": cam.source, "realtime": True, "loop": loop, **turned}
    return "picamera2", {
        "size": (cam.width, cam.height),
        "fps": cam.fps,
        "masks": config.pipeline.masks,
        "keyframe_interval": config.pipeline.keyframe_interval,
        "encoder": cam.encoder,
        **turned,
    }


class Service:
    """One doorbell. ``demo``: gpiozero mock pins and a bell button in the web page.

    Everything it runs comes in through the constructor or is built in
    :meth:`run`; ``open_cam``, ``pin_factory``, the clocks, ``wait`` and
    ``notifier`` are the seams tests use (a scripted camera, gpiozero's
    ``MockFactory``, a fake clock, a recording notifier)."""

    def _pairing_note(self) -> None:
        """With no owner yet, make sure there is a setup code, and say where to see it
        (never the code itself: the journal is not the place for a secret)."""
        if Owners(self.keyring).has_owner():
            return
        SetupCode(self.data_dir).ensure()
        log.info(
            "no owner yet: open the pages and pair with the setup code "
            "(on this device: doorbell setup-code --data-dir %s)",
            self.data_dir,
        )

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
        clock_state: Callable[[], clocks.ClockState] = clocks.read,
        notify_urls: Sequence[str] = (),
    ) -> None:
        self.config = config
        self.demo = demo
        self.data_dir = Path(config.storage.data_dir)
        backend, options = camera_options(config, demo=demo)
        if demo and pin_factory is None:
            from gpiozero.pins.mock import MockFactory

            pin_factory = MockFactory()
        self._pin_factory = pin_factory
        self._work_factor = work_factor
        self._clock = clock
        self._clock_state = clock_state
        self.notifier = notifier if notifier is not None else Notifier.from_environment()
        self.keyring = Keyring.in_data_dir(self.data_dir)
        self.recipients = KeptRecipients(self.keyring)
        self.store: ClipStore | None = None
        self.url: str | None = None
        self.tls_fingerprint: str | None = None
        self.pins: DoorbellPins | None = None
        self.bus: EventBus | None = None
        self.live = LiveFrames(lambda viewers: self._update_led())
        # MQTT and notifications: opt-in (demo --notify gives its URL here)
        self.outbound = Outbound(config, clock=clock, notify_urls=notify_urls)
        from doorbell.web import guard  # the web stack loads only for a service

        # descriptors for recording first; the connections get what is left (web.guard)
        self.connections = guard.ConnectionGuard(guard.reserve_descriptors())
        self.camera = CameraLoop(
            open_cam or (lambda: open_camera(backend, **options)),
            self._new_pipeline,
            can_record=self.recipients.check,
            on_state=self._camera_state,
            on_frame=self.live.offer,
            on_session_end=self._update_led,
            monotonic=monotonic,
            wall_clock=clock,
            wait=wait,
        )

    @property
    def pipeline(self) -> Pipeline | None:
        """The current camera session's pipeline (None before the camera first opened)."""
        return self.camera.pipeline

    # -- wiring: callbacks from the camera thread and gpiozero's threads ------------------

    def _new_pipeline(self, camera: Camera, wall_time: WallTime) -> Pipeline:
        assert self.store is not None
        return Pipeline(
            self.store,
            self.config.pipeline,
            camera.width,
            camera.height,
            camera.fps,
            wall_time=wall_time,
            on_clip=self._clip,
            on_motion=lambda active, at: self._publish(MotionChanged(self._clock(), active)),
            encoded=encoded_stream(camera),
            colour=colour_of(camera),
        )

    def _update_led(self) -> None:
        pipeline = self.pipeline
        if self.pins is not None and pipeline is not None:
            self.pins.set_indicator(
                recording=pipeline.recorder.recording, viewers=self.live.viewers
            )

    def _publish(self, event: Event) -> None:
        if self.bus is not None:
            self.bus.publish_threadsafe(event)

    def _pressed(self, _at: float) -> None:
        """gpiozero's thread: the bell. The clip and the browsers both hear of it."""
        self.camera.press_bell()
        self._publish(BellPressed(self._clock()))

    def _pir(self, active: bool, _at: float) -> None:
        self.camera.pir(active)
        self._publish(PirChanged(self._clock(), active))

    def _clip(self, kind: str, detail: object) -> None:
        self._update_led()
        self.notifier.status(self.status_line())
        if isinstance(detail, Clip):
            self._publish(ClipFinished(detail))
        else:
            pipeline = self.pipeline
            clip_id = pipeline.recorder.clip_id if pipeline is not None else None
            self._publish(ClipStarted(self._clock(), str(detail), clip_id or ""))

    def _camera_state(self, state: str) -> None:
        self.notifier.status(self.status_line())
        self._publish(CameraState(self._clock(), state))

    def press_mock_bell(self) -> None:
        """The demo's button: drive the mock bell pin low and high again."""
        assert self.pins is not None and self.pins.button is not None
        pin = self.pins.button.pin
        pin.drive_low()
        pin.drive_high()

    # -- what it says about itself -------------------------------------------------------

    def _warnings(self) -> list[str]:
        plan = self.store.last_prune if self.store is not None else None
        return fault_lines(
            self.recipients.fault,
            self.pipeline.recorder.fault if self.pipeline else None,
            plan.warning if plan is not None else "",
        )

    @property
    def recording(self) -> bool:
        return self.pipeline is not None and self.pipeline.recorder.recording

    def status(self) -> dict:
        """What the status page shows: camera state, recording, viewers, retention, warnings."""
        camera = self.camera
        synced = self._clock_state().synchronised
        return {
            "camera": camera.current_state(),
            "clock": {"synchronised": synced, "text": clocks.describe(synced)},
            "frames": {
                "received": camera.frames_received,
                "dropped": camera.frames_dropped,
                "missed": camera.frames_missed,
                "last_at": camera.last_frame_wall,
            },
            "recording": self.recording,
            "recipients": [str(r) for r in self.recipients.current()],
            "live_viewers": self.live.viewers,
            "connections": self.connections.summary(),
            **self.outbound.status(),
            "retention": describe_retention(self.config.storage),
            "warnings": self._warnings(),
            "demo": self.demo,
        }

    def status_line(self) -> str:
        """One line for systemd's STATUS= (``systemctl status doorbell``)."""
        parts = [f"camera {self.camera.current_state()}"]
        if self.recording:
            parts.append("recording")
        if self._clock_state().synchronised is not True:
            parts.append("clock not synchronised")
        return "; ".join(parts + self._warnings() + self.outbound.problems())

    def watchdog_tick(self) -> bool:
        """Ping systemd's watchdog if the camera is healthy; True if it was pinged."""
        if self.camera.healthy():
            self.notifier.watchdog()
            return True
        log.error("camera: stuck (no frame, no reconnect attempt); not pinging the watchdog")
        return False

    # -- run -----------------------------------------------------------------------------

    async def run(
        self, stop: asyncio.Event, ready: Callable[["Service"], None] = lambda s: None
    ) -> None:
        """Run until ``stop`` is set; then finish the clip and shut down in order."""
        from aiohttp import web

        from doorbell.web import guard, tls
        from doorbell.web.app import make_app
        from doorbell.web.context import BROWSER_WORK_FACTOR, WebContext

        loop = asyncio.get_running_loop()
        self.bus = EventBus(loop)
        try:
            store = ClipStore(
                self.data_dir,
                self.recipients.recipients,
                retention=retention_rules(self.config.storage),
                clock=self._clock,
                clock_state=self._clock_state,
            )
        except OSError as err:
            if not storage_failure(err):
                raise
            raise DataFolderError(
                f"{storage_fault(self.data_dir, err).split('; ')[0]}; the doorbell starts "
                "once it is writable (under systemd it tries again every 5 s)"
            ) from None
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
                keyring=self.keyring,
                settings=self.config.web,
                bus=self.bus,
                live=self.live,
                status=self.status,
                press_bell=self.press_mock_bell if self.demo else None,
                work_factor=self._work_factor or BROWSER_WORK_FACTOR,
                tls_fingerprint=self.tls_fingerprint,
                secure_cookies=ssl_context is not None,
                guard=self.connections,
            )
            self._pairing_note()
            runner = web.AppRunner(
                make_app(context),
                access_log=None,
                handler_cancellation=True,
                **guard.HANDLER_LIMITS,
            )
            await runner.setup()
            listener = self.connections.listen(host, port)
            site = guard.GuardedSite(runner, listener, ssl_context=ssl_context)
            await site.start()
            bound = listener.getsockname()
            shown = "localhost" if tls.is_loopback(host) else host
            self.url = f"{'https' if ssl_context else 'http'}://{shown}:{bound[1]}/"
            self.outbound.base_url = page_address(self.url)
            camera_done = loop.create_future()

            def camera_finished() -> None:
                if not camera_done.done():
                    camera_done.set_result(None)

            def camera_thread() -> None:
                try:
                    self.camera.run()
                finally:
                    loop.call_soon_threadsafe(camera_finished)

            # A daemon thread: a camera stuck in its driver cannot keep the process alive.
            thread = threading.Thread(target=camera_thread, name="camera", daemon=True)
            thread.start()
            async with asyncio.TaskGroup() as group:
                background = [
                    group.create_task(self._retention(store)),
                    group.create_task(self._watchdog()),
                    group.create_task(self._monitor()),
                    group.create_task(self._correct_times(store)),
                    *self.outbound.start(self.bus, store, group),
                ]
                self.notifier.ready(self.status_line())
                ready(self)
                await stop.wait()
                self.notifier.stopping()
                self.camera.stop()
                try:  # the camera thread finishes the clip being recorded
                    await asyncio.wait_for(asyncio.shield(camera_done), STOP_GRACE)
                except TimeoutError:
                    log.error("the camera did not stop in %g s; its clip stays partial", STOP_GRACE)
                for task in background:
                    task.cancel()
        finally:
            self.camera.stop()
            self.outbound.close()
            if runner is not None:
                await runner.cleanup()
            if self.pins is not None:
                self.pins.close()
            if thread is None or not thread.is_alive():
                store.close()  # else the process is about to end under a stuck camera

    async def _retention(self, store: ClipStore) -> None:
        while True:
            await asyncio.sleep(RETENTION_SECONDS)
            await asyncio.to_thread(store.prune)
            self.notifier.status(self.status_line())

    async def _monitor(self) -> None:
        """Tell systemd and the pages of changes no event reports: a camera that went
        silent (stalled), a fault that cleared or appeared between clips."""
        camera_state, line = self.camera.current_state(), self.status_line()
        while True:
            await asyncio.sleep(MONITOR_SECONDS)
            now_state, now_line = self.camera.current_state(), self.status_line()
            if now_state != camera_state:
                if now_state.startswith("stalled") and not camera_state.startswith("stalled"):
                    log.warning("camera: %s", now_state)
                self._publish(CameraState(self._clock(), now_state))
            if now_line != line:
                self.notifier.status(now_line)
            camera_state, line = now_state, now_line

    async def _correct_times(self, store: ClipStore) -> None:
        """Once the clock is synchronised, clips recorded before it get their true times."""
        while True:
            await asyncio.to_thread(store.correct_times)
            await asyncio.sleep(CLOCK_SECONDS)

    async def _watchdog(self) -> None:
        interval = self.notifier.watchdog_interval
        if interval is None:
            return
        while True:
            self.watchdog_tick()
            await asyncio.sleep(interval)
