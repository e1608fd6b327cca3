"""The trigger state machine, driven by a replayed timeline: no clock, no sleeping."""

import pytest

from doorbell.trigger import IDLE, Bell, Motion, Pir, Policy, Start, Stop, Tick, run, step

POLICY = Policy(pre_roll=5, post_roll=10, max_clip=120)


def ticks(start: float, end: float, every: float = 0.5) -> list[Tick]:
    n = int((end - start) / every)
    return [Tick(start + i * every) for i in range(n + 1)]


def test_a_bell_press_starts_a_clip_with_pre_roll():
    state, actions = step(IDLE, Bell(30.0), POLICY)
    assert actions == [Start(at=30.0, since=25.0, trigger="bell")]
    assert state.recording


def test_the_clip_stops_post_roll_after_the_press():
    _, actions = run([Bell(30.0), *ticks(30.5, 45.0)], POLICY)
    assert actions == [Start(30.0, 25.0, "bell"), Stop(40.0, "quiet")]


def test_motion_keeps_the_clip_open_and_post_roll_counts_from_its_end():
    events = [Motion(10.0, True), *ticks(10.5, 50.0), Motion(50.0, False), *ticks(50.5, 70.0)]
    _, actions = run(events, POLICY)
    assert actions == [Start(10.0, 5.0, "motion"), Stop(60.0, "quiet")]


def test_a_press_during_a_motion_clip_starts_a_bell_clip_with_its_own_pre_roll():
    events = [Motion(0.0, True), Motion(2.0, False), *ticks(2.5, 9.0), Bell(9.0), *ticks(9.5, 30)]
    _, actions = run(events, POLICY)
    assert actions == [
        Start(0.0, -5.0, "motion"),
        Stop(9.0, "bell"),
        Start(9.0, 4.0, "bell"),
        Stop(19.0, "quiet"),
    ]


def test_a_second_press_extends_the_bell_clip():
    _, actions = run([Bell(0.0), *ticks(0.5, 8.0), Bell(8.0), *ticks(8.5, 30)], POLICY)
    assert actions == [Start(0.0, -5.0, "bell"), Stop(18.0, "quiet")]


def test_new_motion_during_post_roll_extends():
    events = [Motion(0, True), Motion(1, False), *ticks(1.5, 8), Motion(8, True), Motion(9, False)]
    events += ticks(9.5, 40)
    _, actions = run(events, POLICY)
    assert actions == [Start(0, -5, "motion"), Stop(19.0, "quiet")]


def test_max_length_splits_a_long_clip_and_goes_on():
    events = [Motion(0.0, True), *ticks(1.0, 200.0, every=1.0)]
    state, actions = run(events, POLICY)
    assert actions == [
        Start(0.0, -5.0, "motion"),
        Stop(115.0, "max_length"),  # 120 s counted from the pre-roll's first frame
        Start(115.0, 115.0, "motion"),
    ]
    assert state.recording


def test_max_length_with_nothing_going_on_just_stops():
    short = Policy(pre_roll=1, post_roll=100, max_clip=20)
    _, actions = run([Bell(0.0), *ticks(0.5, 60.0)], short)
    assert actions == [Start(0.0, -1.0, "bell"), Stop(19.0, "max_length")]


def test_motion_can_be_made_to_only_extend():
    policy = Policy(motion_starts=False)
    _, actions = run([Motion(1.0, True), *ticks(1.5, 30)], policy)
    assert actions == []
    _, actions = run([Bell(0.0), Motion(1.0, True), *ticks(1.5, 30)], policy)
    assert actions == [Start(0.0, -5.0, "bell")]


def test_pir_as_a_trigger():
    policy = Policy(pir="trigger")
    _, actions = run([Pir(3.0, True), *ticks(3.5, 8), Pir(8.0, False), *ticks(8.5, 30)], policy)
    assert actions == [Start(3.0, -2.0, "pir"), Stop(18.0, "quiet")]


def test_pir_confirm_needs_both_sensors():
    policy = Policy(pir="confirm")
    _, alone = run([Motion(1.0, True), *ticks(1.5, 30)], policy)
    assert alone == []  # a shadow on the camera, nobody warm there
    _, both = run([Motion(1.0, True), Pir(2.0, True), *ticks(2.5, 4)], policy)
    assert both == [Start(2.0, -3.0, "motion")]
    _, order = run([Pir(1.0, True), Motion(2.0, True)], policy)
    assert order == [Start(2.0, -3.0, "motion")]


def test_pir_is_ignored_when_off():
    _, actions = run([Pir(1.0, True), *ticks(1.5, 30)], POLICY)
    assert actions == []


@pytest.mark.parametrize("bad", [{"pre_roll": -1}, {"post_roll": -0.5}, {"max_clip": 5}])
def test_nonsense_policies_are_refused(bad):
    with pytest.raises(ValueError):
        Policy(**bad)
