"""The camera thread: frames from the camera through the pipeline, and the camera reopened
whenever it fails or ends.

    loop = CameraLoop(open_cam, make_pipeline, can_record=keyring.has_recipients,
                      on_state=print)
    threading.Thread(target=loop.run, name="camera", daemon=True).start()
    loop.press_bell()       # gpiozero's thread: the clip starts at this moment
    loop.stop()             # the clip being recorded is finished, then run() returns

A camera that fails to open, dies or (a file) ends: the clip being recorded
is finished, and the camera is opened again after 0.5, 1, 2, 4 … seconds (at
most 30, :func:`reconnect_delay`) until :meth:`CameraLoop.stop`. Each camera
session has its own clock (frame times restart with it), so a bell pressed
while the camera (re)starts waits for the next session's first frame (at
most :data:`BELL_WAIT` seconds) and the clip starts there.

Before the owner has a key there is no recipient to encrypt to: frames are
masked (for the live view) and dropped (counted in ``frames_dropped``).
Whether a key exists is asked at most once a second
(:data:`RECIPIENTS_RECHECK`), never once a frame.

Times: a frame's camera time is its own timestamp (the sensor's, the file's
presentation time). Its wall time is read from the wall clock at the latest
frame (``wall_clock() - (camera_now - at)``), so a clock that NTP steps moves
the next clip's times with it, never a session-long origin. A camera silent
for :func:`stall_after` seconds while open shows as "stalled" in
:meth:`CameraLoop.current_state` at once, before the camera gives up; a
pipeline that cannot be built (a picture size no encoder takes) is a state and
a log line, and the camera is tried again like a failed one.

Thread ownership: :meth:`run` and everything it calls run on the camera
thread, which alone touches the pipeline's frame path. :meth:`press_bell`
and :meth:`pir` come from gpiozero's threads; ``_lock`` guards the camera
clock and the waiting press, which those threads and the camera thread
share. ``state``, ``reconnecting`` and ``alive_at`` are written by the camera
thread alone and read elsewhere as plain values.
"""

import contextlib
import logging
import threading
import time
from collections.abc import Callable

from doorbell.camera import Camera, EncodingCamera
from doorbell.camera.frame import EncodedPacket, Frame
from doorbell.pipeline import Pipeline

log = logging.getLogger(__name__)

RECONNECT_FIRST, RECONNECT_CAP = 0.5, 30.0  # seconds
STALE_SECONDS = 10.0  # no frame for this long, and no reconnect under way: stuck
STALL_SECONDS = 3.0  # no frame for this long (or 3 frame periods) from an open camera: stalled
BELL_WAIT = 30.0  # seconds: a press while the camera (re)starts is recorded if it is back by then
RECIPIENTS_RECHECK = 1.0  # seconds between checks that the owner has a key

WallTime = Callable[[float], float]  # camera seconds → Unix time


def reconnect_delay(attempt: int) -> float:
    """Seconds before reopening the camera after ``attempt`` failures in a row (0-based):
    0.5, 1, 2, 4 … at most 30."""
    return min(RECONNECT_CAP, RECONNECT_FIRST * 2 ** min(attempt, 16))


class PipelineFailed(Exception):
    """A frame could not go through the pipeline (its cause is the real error)."""


def stall_after(fps: float) -> float:
    """Seconds without a frame before an open camera counts as stalled: 3 s, or three
    frame periods for a camera slower than 1 fps."""
    return max(STALL_SECONDS, 3.0 / fps) if fps > 0 else STALL_SECONDS


def camera_healthy(now: float, alive_at: float, reconnecting: bool) -> bool:
    """Whether to ping the watchdog: frames arriving, or a reconnect in progress.

    ``alive_at`` (monotonic seconds, like ``now``) is the last frame, or the
    start of the last attempt to open the camera. Attempts come at most 30 s
    apart, so a reconnect silent for longer than that (an open hung in the
    driver) is stuck too."""
    limit = RECONNECT_CAP + STALE_SECONDS if reconnecting else STALE_SECONDS
    return now - alive_at < limit


class CameraLoop:
    """One camera, run on its own thread, reopened when it fails, until :meth:`stop`.

    ``open_camera`` opens the camera (raising if it cannot); ``make_pipeline``
    builds a session's pipeline from the opened camera and its wall-time
    mapping; ``can_record`` says whether the owner has a key yet;
    ``on_state`` hears each state in words ("running", "reconnecting in 1 s
    (attempt 2): …", "stopped"); ``on_frame`` gets every masked frame (the live
    view); ``on_session_end`` runs after a session's clip was finished.
    """

    def __init__(
        self,
        open_camera: Callable[[], Camera],
        make_pipeline: Callable[[Camera, WallTime], Pipeline],
        *,
        can_record: Callable[[], bool],
        on_state: Callable[[str], None] = lambda state: None,
        on_frame: Callable[[Frame], None] = lambda frame: None,
        on_session_end: Callable[[], None] = lambda: None,
        monotonic: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        wait: Callable[[float], object] | None = None,
    ) -> None:
        self._open_camera = open_camera
        self._make_pipeline = make_pipeline
        self._can_record = can_record
        self._on_state = on_state
        self._on_frame = on_frame
        self._on_session_end = on_session_end
        self._monotonic = monotonic
        self._wall_clock = wall_clock
        self.stopping = threading.Event()
        self._wait = wait or self.stopping.wait
        self.state = "starting"
        self.reconnecting = True  # opening the camera counts as a reconnect under way
        self.alive_at = monotonic()  # the last frame, or the last attempt to open the camera
        self.pipeline: Pipeline | None = None
        self.frames_received = 0  # every frame from every session
        self.frames_dropped = 0  # received but not recorded: no key to encrypt to
        self.frames_missed = 0  # never received: numbers the camera skipped (it was not read)
        self.last_frame_wall: float | None = None  # wall-clock time of the last frame
        self._stall_after = STALL_SECONDS
        self._lock = threading.Lock()  # guards _camera_clock and _bell_waiting (see above)
        # (frame time, monotonic) of this session's last frame; None before its first
        self._camera_clock: tuple[float, float] | None = None
        self._bell_waiting: float | None = None  # monotonic time of a press before a first frame
        self._recording_allowed = False
        self._recheck_at = float("-inf")

    # -- from other threads -------------------------------------------------------------

    def stop(self) -> None:
        """Ask the camera thread to finish the clip being recorded and return."""
        self.stopping.set()

    def current_state(self) -> str:
        """The state in words, as of now: "running" becomes "stalled: no frame for 4 s"
        while an open camera sends nothing (the camera thread is blocked in it)."""
        state = self.state
        if state == "running" and not self.reconnecting:
            gap = self._monotonic() - self.alive_at
            if gap >= self._stall_after:
                return f"stalled: no frame for {gap:.0f} s"
        return state

    def healthy(self) -> bool:
        """Frames arrive, or a reconnect is under way (see :func:`camera_healthy`)."""
        return camera_healthy(self._monotonic(), self.alive_at, self.reconnecting)

    def _camera_now(self) -> tuple[float | None, Pipeline | None]:
        """Camera time now (the last frame's time plus what has passed since it came) and
        the session's pipeline; (None, None) before the session's first frame. Under _lock."""
        if self._camera_clock is None:
            return None, None
        at, seen = self._camera_clock
        return at + (self._monotonic() - seen), self.pipeline

    def press_bell(self) -> None:
        """The bell, from any thread: the clip starts now, or at the next first frame."""
        with self._lock:
            at, pipeline = self._camera_now()
            if at is None:
                self._bell_waiting = self._monotonic()
                return
        assert pipeline is not None
        pipeline.press_bell(at)

    def pir(self, active: bool) -> None:
        """The PIR sensor changed, from any thread; ignored while the camera is down."""
        with self._lock:
            at, pipeline = self._camera_now()
        if at is not None and pipeline is not None:
            pipeline.pir(active, at)

    # -- the camera thread --------------------------------------------------------------

    def _set_state(self, state: str, reconnecting: bool) -> None:
        self.state = state
        self.reconnecting = reconnecting
        self._on_state(state)

    def run(self) -> None:
        """Open the camera, run it, and when it fails or ends open it again, until stop."""
        attempt = 0
        while not self.stopping.is_set():
            self.reconnecting = True
            self.alive_at = self._monotonic()
            try:
                camera = self._open_camera()
            except Exception as err:  # a camera that will not open is reported, not fatal
                reason = str(err) or type(err).__name__
            else:
                frames, reason = self._session(camera)
                if frames:
                    attempt = 0
            if self.stopping.is_set():
                break
            delay = reconnect_delay(attempt)
            attempt += 1
            log.warning("camera: %s; trying again in %g s", reason, delay)
            self._set_state(
                f"reconnecting in {delay:g} s (attempt {attempt}): {reason}", reconnecting=True
            )
            self._wait(delay)
        self._set_state("stopped", reconnecting=False)

    def _may_record(self, now: float) -> bool:
        if now >= self._recheck_at:
            self._recording_allowed = self._can_record()
            self._recheck_at = now + RECIPIENTS_RECHECK
        return self._recording_allowed

    def _session(self, camera: Camera) -> tuple[int, str]:
        """Frames from one opened camera until it ends, fails or stop; the clip being
        recorded is finished. Returns the frames seen and why it ended."""
        anchor: list[float] = []  # [camera time, wall time] of the latest frame

        def wall_time(at: float) -> float:
            return self._wall_clock() if not anchor else anchor[1] + (at - anchor[0])

        try:
            pipeline = self._make_pipeline(camera, wall_time)
        except Exception as err:  # an unusable picture: say so, and try again like a failure
            reason = f"cannot record this camera's picture: {err or type(err).__name__}"
            log.error("camera: %s", reason)
            with contextlib.suppress(Exception):
                camera.close()
            return 0, reason
        self.pipeline = pipeline  # its clock starts at its first frame (_camera_clock is None)
        self._stall_after = stall_after(camera.fps)
        self._set_state("running", reconnecting=False)
        count, reason = 0, "the video ended"
        last_index: int | None = None
        try:
            for frame in camera.frames():
                if self.stopping.is_set():
                    break
                if last_index is not None and frame.index > last_index + 1:
                    self.frames_missed += frame.index - last_index - 1
                last_index = frame.index
                now = self._monotonic()
                gap = now - self.alive_at
                with self._lock:
                    self._camera_clock = (frame.at, now)
                    waiting, self._bell_waiting = self._bell_waiting, None
                wall = self._wall_clock()
                anchor[:] = (frame.at, wall)
                count += 1
                self.frames_received += 1
                self.last_frame_wall = wall
                self.alive_at = now
                if gap >= self._stall_after and count > 1:
                    log.warning("camera: frames again after %.0f s without one", gap)
                if waiting is not None and now - waiting < BELL_WAIT:
                    pipeline.press_bell(frame.at)  # pressed while the camera was (re)starting
                try:
                    if self._may_record(now):
                        pipeline.process(frame)  # masks it first
                    else:
                        self.frames_dropped += 1
                        pipeline.paint(frame)  # for the live view
                except Exception as failure:
                    raise PipelineFailed(failure) from failure
                self._on_frame(frame)
            gap = self._monotonic() - self.alive_at
            if count and gap >= self._stall_after and not self.stopping.is_set():
                reason = f"no frame for {gap:.0f} s, then the source closed"
        except PipelineFailed as failed:  # a bug or an encoder failure: start afresh
            cause = failed.__cause__ or failed
            reason = f"recording failed: {cause or type(cause).__name__}"
            log.error("camera: %s", reason)
            log.debug("the failure in detail", exc_info=cause)
        except Exception as err:  # the camera died: finish the clip, then reconnect
            reason = str(err) or type(err).__name__
            log.error("camera: %s", reason)
        finally:
            with self._lock:
                self._camera_clock = None  # presses until the next session's first frame wait
            self._end_session(camera, pipeline)
        return count, reason

    def _end_session(self, camera: Camera, pipeline: Pipeline) -> None:
        """Finish the clip being recorded (with what the camera's encoder still held), close
        the camera. A failure here is logged: the clip stays partial, recovered at unlock."""
        tail: list[EncodedPacket] = []
        if isinstance(camera, EncodingCamera):
            try:
                tail = camera.stop_encoder()
            except Exception as err:
                log.warning(
                    "camera: stopping its encoder failed (%s); its last frames are lost", err
                )
        try:
            pipeline.finish(tail)  # the clip being recorded is finished, not cut
        except Exception:
            log.exception("finishing the clip failed; it stays partial, recovered at unlock")
        finally:
            try:
                camera.close()
            except Exception as err:
                log.warning("camera: closing it failed: %s", err)
            self._on_session_end()
