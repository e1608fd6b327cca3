"""The camera thread's own rules, driven directly with a fake clock: no sleeps, no service."""

import threading

from doorbell.camera.frame import Frame
from doorbell.camera.synthetic import SyntheticCamera
from doorbell.camera_loop import CameraLoop
from doorbell.config import PipelineSettings
from doorbell.pipeline import Pipeline
from doorbell.store import ClipStore
from doorbell.trigger import Policy

FPS = 15.0


def run_once(data_dir, camera, *, can_record, on_frame=lambda frame: None, now=None):
    """Run the loop over ``camera`` until it ends (a file would end too), on a clock that
    advances one frame period per frame. Returns the loop, its pipeline and the store."""
    now = now if now is not None else [100.0]
    store = ClipStore.open(data_dir)
    settings = PipelineSettings(policy=Policy(pre_roll=1.0, post_roll=1.0))

    def make_pipeline(cam, wall_time):
        return Pipeline(store, settings, cam.width, cam.height, cam.fps, wall_time=wall_time)

    start = now[0]

    def frame_seen(frame):
        on_frame(frame)
        now[0] = start + (frame.index + 1) / FPS  # exact at whole seconds

    loop = CameraLoop(
        lambda: camera,
        make_pipeline,
        can_record=can_record,
        on_frame=frame_seen,
        monotonic=lambda: now[0],
        wall_clock=lambda: 1_700_000_000.0,
        wait=lambda seconds: loop.stop(),  # the first reconnect ends the test
    )
    loop.run()
    return loop, store


def test_the_owner_key_is_looked_for_once_a_second_not_once_a_frame(data_dir):
    """60 frames over 4 s: the key is asked for 4 times (at 0, 1, 2, 3 s), and frames are
    recorded from the look that found it (2 s) on; before it they are only masked."""
    now = [100.0]
    asked: list[float] = []

    def can_record() -> bool:
        asked.append(round(now[0] - 100.0, 3))
        return len(asked) >= 3

    camera = SyntheticCamera(width=160, height=90, fps=FPS, duration=4.0, visitors=())
    loop, store = run_once(data_dir, camera, can_record=can_record, now=now)
    assert asked == [0.0, 1.0, 2.0, 3.0]
    assert loop.pipeline is not None and loop.pipeline.frames == 30  # from 2 s to 4 s
    assert loop.state == "stopped"
    store.close()


def test_a_press_before_the_first_frame_starts_the_clip_at_it(data_dir):
    """The bell rings while the camera is still opening: the press waits, and the first
    frame starts a bell clip (no pre-roll exists yet) instead of the press being lost."""
    camera = SyntheticCamera(width=160, height=90, fps=FPS, duration=3.0, visitors=())
    pressed = threading.Event()

    def open_then_press():
        loop_holder[0].press_bell()  # before any frame: nothing to time it against
        pressed.set()
        return camera

    loop_holder: list[CameraLoop] = []
    store = ClipStore.open(data_dir)
    settings = PipelineSettings(policy=Policy(pre_roll=1.0, post_roll=30.0))
    loop = CameraLoop(
        open_then_press,
        lambda cam, wall_time: Pipeline(
            store, settings, cam.width, cam.height, cam.fps, wall_time=wall_time
        ),
        can_record=lambda: True,
        wait=lambda seconds: loop.stop(),
    )
    loop_holder.append(loop)
    loop.run()
    assert pressed.is_set()
    [clip] = store.list()
    assert clip.trigger == "bell" and clip.state == "complete"
    assert loop.pipeline is not None
    [recorded] = loop.pipeline.recorder.finished
    assert recorded.start_at == 0.0  # the clip begins at the first frame
    store.close()


DAY = 86_400.0


def test_clip_times_follow_a_clock_that_steps_mid_session(data_dir):
    """The Pi booted 40 days behind; NTP steps the clock at 3 s. The bell clip before the
    step carries the old time, the one after it the corrected time: the wall time is read
    at each frame, never from an origin taken once per camera session."""
    now = [100.0]
    step = [0.0]
    store = ClipStore.open(data_dir)
    settings = PipelineSettings(policy=Policy(pre_roll=1.0, post_roll=1.0))
    camera = SyntheticCamera(width=160, height=90, fps=FPS, duration=6.0, visitors=())

    def frame_seen(frame):
        if frame.index in (15, 60):  # presses at 1 s and 4 s of camera time
            loop.press_bell()
        if frame.index == 45:
            step[0] = 40 * DAY  # the clock is corrected at 3 s
        now[0] = 100.0 + (frame.index + 1) / FPS

    loop = CameraLoop(
        lambda: camera,
        lambda cam, wall_time: Pipeline(
            store, settings, cam.width, cam.height, cam.fps, wall_time=wall_time
        ),
        can_record=lambda: True,
        on_frame=frame_seen,
        monotonic=lambda: now[0],
        wall_clock=lambda: 1_700_000_000.0 - 40 * DAY + (now[0] - 100.0) + step[0],
        wait=lambda seconds: loop.stop(),
    )
    loop.run()
    second, first = store.list()
    behind = 1_700_000_000.0 - 40 * DAY
    assert abs(first.start - behind) < 0.1  # the keyframe at 0 s, on the old clock
    assert abs(second.start - (1_700_000_000.0 + 3.0)) < 0.1  # the keyframe at 3 s, corrected
    assert second.end is not None and abs(second.end - (1_700_000_000.0 + 5.0)) < 0.2
    store.close()


class _ScriptedCamera:
    """A camera whose frames come as a script says: ``gaps`` maps a frame index to the
    seconds of silence (on the fake clock) before it; ``end_after`` seconds of silence
    before the source closes. ``look`` is called at the end of each silence, as another
    thread asking for the state would."""

    width, height, fps = 160, 90, FPS

    def __init__(self, now, frames, gaps=None, end_after=0.0, look=lambda: None):
        self.now, self.count = now, frames
        self.gaps, self.end_after, self.look = gaps or {}, end_after, look
        self._synthetic = SyntheticCamera(width=160, height=90, fps=FPS, visitors=())

    def frames(self):
        start, silence = self.now[0], 0.0
        for index in range(self.count):
            if index in self.gaps:
                silence += self.gaps[index]
                self.now[0] = start + silence + index / FPS
                self.look()
            yield Frame(self._synthetic.render(index / FPS), index / FPS, index)
            self.now[0] = start + silence + (index + 1) / FPS  # exact at whole seconds
        self.now[0] += self.end_after
        self.look()

    def close(self):
        pass


def _loop_over(camera, data_dir, now, states, *, make_pipeline=None, can_record=lambda: True):
    store = ClipStore.open(data_dir)
    settings = PipelineSettings(policy=Policy(pre_roll=1.0, post_roll=1.0))
    loop = CameraLoop(
        lambda: camera,
        make_pipeline
        or (
            lambda cam, wall_time: Pipeline(
                store, settings, cam.width, cam.height, cam.fps, wall_time=wall_time
            )
        ),
        can_record=can_record,
        on_state=states.append,
        monotonic=lambda: now[0],
        wall_clock=lambda: 1_700_000_000.0 + now[0],
        wait=lambda seconds: loop.stop(),
    )
    return loop, store


def test_a_silent_camera_shows_as_stalled_within_seconds_and_says_why_it_ended(data_dir):
    """A network stream stops sending: 2 s of silence is still "running", 4 s is "stalled"
    (while the camera thread is blocked in the camera), and when the source finally closes
    the reconnect names the silence, not "the video ended"."""
    now = [100.0]
    seen: list[str] = []
    states: list[str] = []
    camera = _ScriptedCamera(
        now,
        20,
        gaps={10: 2.0, 15: 4.0},
        end_after=6.0,
        look=lambda: seen.append(loop.current_state()),
    )
    loop, store = _loop_over(camera, data_dir, now, states)
    loop.run()
    assert seen == ["running", "stalled: no frame for 4 s", "stalled: no frame for 6 s"]
    assert (
        states[-2] == "reconnecting in 0.5 s (attempt 1): no frame for 6 s, then the source closed"
    )
    assert loop.frames_received == 20 and loop.frames_dropped == 0
    assert loop.last_frame_wall == 1_700_000_000.0 + 100.0 + 6.0 + 19 / FPS
    store.close()


def test_frames_without_a_key_to_encrypt_to_are_counted_as_dropped(data_dir):
    """Frames before the owner's key exists are masked and dropped, and counted: the
    status shows received and dropped, so "nothing was dropped" can be checked."""
    now = [100.0]
    states: list[str] = []
    camera = _ScriptedCamera(now, 45)
    loop, store = _loop_over(camera, data_dir, now, states, can_record=lambda: now[0] >= 101.0)
    loop.run()
    assert (loop.frames_received, loop.frames_dropped) == (45, 15)
    assert loop.last_frame_wall == 1_700_000_000.0 + 100.0 + 44 / FPS
    store.close()


def test_a_pipeline_that_cannot_be_built_is_a_state_not_a_dead_thread(data_dir):
    """The encoder refuses the picture: the camera thread lives on, the state and the log
    say why, and the camera is tried again with the usual backoff."""
    now = [100.0]
    states: list[str] = []

    def refuse(cam, wall_time):
        raise ValueError("the encoder takes even sizes only (641x481)")

    loop, store = _loop_over(_ScriptedCamera(now, 5), data_dir, now, states, make_pipeline=refuse)
    loop.run()
    assert states == [
        "reconnecting in 0.5 s (attempt 1): cannot record this camera's picture: "
        "the encoder takes even sizes only (641x481)",
        "stopped",
    ]
    store.close()


def test_a_frame_that_breaks_the_pipeline_restarts_the_session_with_the_reason(data_dir):
    """Something in the pipeline fails on a frame: the clip is finished, the state says
    "recording failed: …", and the loop goes on to reconnect instead of dying."""
    now = [100.0]
    states: list[str] = []
    store_holder = []

    class Breaks(Pipeline):
        def process(self, frame):
            if frame.index == 3:
                raise RuntimeError("encoder lost")
            super().process(frame)

    def make(cam, wall_time):
        return Breaks(
            store_holder[0], PipelineSettings(), cam.width, cam.height, cam.fps, wall_time=wall_time
        )

    loop, store = _loop_over(_ScriptedCamera(now, 10), data_dir, now, states, make_pipeline=make)
    store_holder.append(store)
    loop.run()
    assert states[-2] == "reconnecting in 0.5 s (attempt 1): recording failed: encoder lost"
    store.close()
