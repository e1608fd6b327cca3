"""The camera thread's own rules, driven directly with a fake clock: no sleeps, no service."""

import threading

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
