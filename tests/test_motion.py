"""Motion detection on footage, real and generated, and on frames made to order.

Each footage test runs on a generated scene (tests/scenes.py) always, and on the
real clip of shared/footage when it is there (tests/conftest.py: footage).
"""

import cv2
import numpy as np
import pytest

from doorbell.motion import MotionDetector, MotionSettings
from doorbell.privacy import polygon_mask
from tests import scenes
from tests.conftest import footage, grey_frames


def motion_events(frames, settings=None, zone=None):
    """(first frame, last frame) of each motion event; 'end' if still going."""
    detector = None
    events, start = [], None
    for i, grey in enumerate(frames):
        if detector is None:
            detector = MotionDetector(grey.shape[1], grey.shape[0], settings, zone)
        result = detector.update(grey)
        if result.started:
            start = i
        if result.stopped:
            events.append((start, i))
            start = None
    if start is not None:
        events.append((start, "end"))
    return events


@pytest.fixture(scope="module", params=["generated", "real"])
def waving_tree(request) -> scenes.TreeScene:
    """A tree in the wind, nobody, then a person entering at a known frame."""
    if request.param == "real":
        frames = list(grey_frames(footage("waving-tree.mp4")))
        return scenes.TreeScene(frames, scenes.REAL_TREE_PERSON, 15.0)
    return scenes.waving_tree()


def test_waving_tree_fires_only_for_the_person(waving_tree):
    """No event while only the tree moves; one within a second of the person entering."""
    person = waving_tree.person
    events = motion_events(waving_tree.frames)
    assert events, "the person was missed"
    assert all(start >= person for start, _ in events), events
    assert events[0][0] <= person + waving_tree.fps, "more than a second late"


def test_the_generated_tree_is_motion_the_nuisance_map_must_ignore():
    """The generated tree is not too tame to matter: without the nuisance map the
    detector fires on it, long before the person comes."""
    scene = scenes.waving_tree()
    events = motion_events(scene.frames, MotionSettings(nuisance_rate=0))
    assert events and events[0][0] < scene.person - 30, events


@pytest.fixture(scope="module", params=["generated", "real"])
def porch(request) -> scenes.PorchScene:
    """Visitors one at a time with empty stretches between them, as the low-res grey
    stream (320x180); the real clip is decoded once for the module."""
    if request.param == "real":
        frames = list(grey_frames(footage("porch-visitors.mp4"), (320, 180)))
        return scenes.PorchScene(frames, 10.0, scenes.REAL_PORCH_VISITS, scenes.REAL_PORCH_EMPTY)
    scene = scenes.porch()  # 320x180 already
    grey = [cv2.cvtColor(f, cv2.COLOR_BGR2GRAY) for f in scene.frames]
    return scenes.PorchScene(grey, scene.fps, scene.visits, scene.empty)


def test_porch_every_visitor_and_no_event_in_the_empty_stretches(porch):
    events = motion_events(porch.frames)
    starts = [start for start, _ in events]
    for empty_from, empty_to in porch.empty:
        assert not any(empty_from <= s <= empty_to for s in starts), (empty_from, events)
    for visit_from, visit_to in porch.visits:
        assert any(visit_from <= s <= visit_to for s in starts), (visit_from, events)


def test_a_lighting_change_resets_instead_of_firing(porch):
    empty_from = next(start for start, end in porch.empty if end - start >= 140)
    frames = porch.frames[empty_from : empty_from + 140]  # nobody there
    brighter = [np.clip(f.astype(int) + 90, 0, 255).astype(np.uint8) for f in frames[60:]]
    detector = MotionDetector(320, 180)
    results = [detector.update(f) for f in frames[:60] + brighter]
    assert results[60].lighting_reset
    assert not any(r.active for r in results)


def square_scene(x_of_frame, frames=80, size=(160, 120)):
    rng = np.random.default_rng(7)
    background = rng.integers(40, 90, (size[1], size[0]), dtype=np.uint8)
    for i in range(frames):
        frame = background.copy()
        x = x_of_frame(i)
        if x is not None:
            frame[50:80, x : x + 25] = 230
        yield frame


def test_motion_outside_the_zone_does_not_count():
    settings = MotionSettings(warmup_frames=5)
    walker = lambda i: 10 + i if i > 20 else None  # noqa: E731 - a tiny path
    right_half = polygon_mask([[(0.6, 0), (1, 0), (1, 1), (0.6, 1)]], 160, 120)
    left_half = polygon_mask([[(0, 0), (0.5, 0), (0.5, 1), (0, 1)]], 160, 120)
    frames = list(square_scene(walker, frames=60))  # the square stays within x < 75
    assert motion_events(frames, settings, zone=left_half)
    assert motion_events(frames, settings, zone=right_half) == []


def test_a_blob_must_last_min_frames_and_quiet_ends_it():
    settings = MotionSettings(warmup_frames=5, min_frames=3, quiet_frames=4)
    flash = lambda i: 60 if i in (20, 21) else None  # noqa: E731 - two frames only
    assert motion_events(square_scene(flash), settings) == []
    walk = lambda i: 5 + 2 * i if 20 <= i < 40 else None  # noqa: E731
    events = motion_events(square_scene(walk), settings)
    assert events and events[0][0] == 22  # the third frame running
    assert events[0][1] - 40 < 10


def test_same_frames_same_results(waving_tree):
    events = motion_events(waving_tree.frames)
    assert events  # something to compare: the person
    assert motion_events(waving_tree.frames) == events


@pytest.mark.parametrize("bad", [{"threshold": 0}, {"min_area": 0}, {"min_frames": 0}])
def test_settings_out_of_range_are_refused(bad):
    [key] = bad
    with pytest.raises(ValueError, match=rf"\[motion\] {key}: must be"):
        MotionSettings(**bad)


def test_frames_of_the_wrong_size_are_refused():
    with pytest.raises(ValueError, match="expects"):
        MotionDetector(320, 240).update(np.zeros((120, 160), np.uint8))
