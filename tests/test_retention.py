"""Retention: oldest unkept clips first, by age, quota and free space; kept clips never.

An age is never taken from a wall clock that may have stepped: the scenarios
of a Pi without a battery clock (40 days behind, 1970, 2 h off, never set)
run the real store on injected clocks (``PiClocks``).
"""

from dataclasses import replace

from doorbell.clock import ClockState
from doorbell.store import Clip, ClipStore, Rules, plan_retention
from doorbell.store.retention import DAY, GB, MB, true_age
from tests.test_clock import TRUE0, PiClocks, near, record

NOW = 100 * DAY


def clip(n: int, days_old: float, size: int = 100 * MB, keep: bool = False) -> Clip:
    start = NOW - days_old * DAY
    return Clip(f"{n:016x}", start, start + 30, "motion", size, keep, "complete")


def test_clips_older_than_max_age_go_oldest_first():
    """Only clips past the age limit go when space and quota are fine."""
    clips = [clip(1, 40), clip(2, 31), clip(3, 29), clip(4, 1)]
    plan = plan_retention(clips, now=NOW, free=50 * GB, rules=Rules(max_age=30 * DAY))
    assert plan.delete == (clip(1, 40).id, clip(2, 31).id)
    assert plan.freed == 200 * MB and plan.warning == ""


def test_a_kept_clip_is_never_deleted_however_old():
    """Keep wins over age, quota and a full disk."""
    clips = [clip(1, 400, keep=True), clip(2, 5)]
    plan = plan_retention(clips, now=NOW, free=0, rules=Rules(min_free=1 * GB))
    assert plan.delete == (clip(2, 5).id,)
    assert "no unkept clip is left" in plan.warning


def test_the_quota_deletes_the_oldest_until_the_rest_fits():
    """1 GB quota, 1.2 GB of clips: the two oldest unkept go."""
    clips = [clip(n, 10 - n) for n in range(12)]  # 100 MB each, newest last
    plan = plan_retention(clips, now=NOW, free=50 * GB, rules=Rules(quota=1 * GB))
    assert plan.delete == (clip(0, 10).id, clip(1, 9).id)


def test_min_free_plus_need_is_left_free():
    """150 MB free, 500 MB wanted plus 100 MB asked for: the four oldest unkept go."""
    clips = [clip(n, 10 - n) for n in range(8)]
    plan = plan_retention(
        clips, now=NOW, free=150 * MB, rules=Rules(min_free=500 * MB), need=100 * MB
    )
    assert len(plan.delete) == 5 and plan.freed == 500 * MB
    assert plan.delete[0] == clip(0, 10).id


def test_kept_clips_over_the_quota_are_a_warning_for_the_owner():
    """The status page says kept clips alone pass the quota; nothing kept is touched."""
    clips = [clip(1, 3, size=800 * MB, keep=True), clip(2, 2, size=400 * MB, keep=True), clip(3, 1)]
    plan = plan_retention(clips, now=NOW, free=50 * GB, rules=Rules(quota=1 * GB))
    assert plan.delete == (clip(3, 1).id,)
    assert plan.warning.startswith("kept clips alone use 1.2 GB, more than the 1.0 GB quota")


def test_nothing_to_do_is_an_empty_plan():
    """Within every limit, nothing is deleted and nothing is said."""
    plan = plan_retention([clip(1, 1)], now=NOW, free=50 * GB, rules=Rules(quota=10 * GB))
    assert plan.delete == () and plan.warning == ""


def test_the_store_prunes_before_each_new_clip(data_dir, identities):
    """A store with rules deletes an expired clip when the next clip starts; kept ones stay."""
    now = [NOW - 34 * DAY]  # the clips are made while they are still young
    synced = ClockState(synchronised=True, boot_id=None, boottime=0.0)
    store = ClipStore.open(
        data_dir,
        clock=lambda: now[0],
        clock_state=lambda: synced,
        retention=Rules(max_age=30 * DAY),
        disk_free=lambda: 50 * GB,
    )
    ids = []
    for start in (NOW - 40 * DAY, NOW - 35 * DAY):
        recording = store.new_clip("motion", start=start)
        recording.video.write(b"x" * 1000)
        ids.append(recording.finish(end=start + 5).id)
    store.set_keep(ids[0], True)
    now[0] = NOW
    assert store.prune().delete == (ids[1],)  # the unkept one is past 30 days
    fresh = store.new_clip("bell")
    fresh.video.write(b"y")
    fresh.finish()
    assert sorted(c.id for c in store.list()) == sorted([ids[0], fresh.id])
    assert not store.path(ids[1], ".mp4.age").exists()
    store.close()


def test_a_store_without_rules_keeps_everything(data_dir):
    """No rules (a tool's store, the demo's): prune does nothing."""
    store = ClipStore.open(data_dir)
    assert store.prune() is None
    store.close()


# --- a clock that may have stepped ----------------------------------------------------------

MONTH = Rules(max_age=30 * DAY, min_free=0)


def test_true_age_comes_from_clocks_that_did_not_step():
    """This boot: CLOCK_BOOTTIME (exact, whatever the stamp); certain and synchronised: the
    wall clock; an earlier boot: at least the uptime; else unknown."""
    this = replace(clip(1, 0), start=0.0, time_uncertain=True, boot_id="b", boot_start=100.0)
    state = ClockState(False, "b", 3 * DAY)
    assert true_age(this, now=NOW, clock=state) == 3 * DAY - 100.0
    certain = replace(clip(2, 40), boot_id="a", boot_start=5.0)
    assert true_age(certain, now=NOW, clock=replace(state, synchronised=True)) == 40 * DAY
    assert true_age(certain, now=NOW, clock=state) == 3 * DAY  # earlier boot, clock unset
    assert true_age(replace(certain, time_uncertain=True), now=NOW, clock=state) == 3 * DAY
    assert true_age(clip(3, 40), now=NOW, clock=state) is None  # no boot known, clock unset
    assert true_age(clip(3, 40), now=NOW, clock=replace(state, synchronised=None)) is None


def test_forty_days_behind_then_set_deletes_neither_clip(data_dir):
    """The issue's case: clip 1 stamped 40 days back, NTP sets the clock, clip 2 starts (and
    prunes): both stay, and stay at later prunes; correct_times gives both their true times."""
    clocks = PiClocks(error=-40 * DAY)
    store = clocks.store(data_dir, retention=MONTH, disk_free=lambda: 50 * GB)
    first = record(store, clocks)
    clocks.advance(1800)
    clocks.set_by_ntp()
    second = record(store, clocks)
    assert {c.id for c in store.list()} == {first.id, second.id}
    assert store.prune().delete == ()
    assert store.correct_times() == [first.id]
    assert [c.start for c in store.list()] == near([TRUE0 + 1838.0, TRUE0 + 28.0])
    assert not any(c.time_uncertain for c in store.list())
    clocks.advance(29 * DAY)
    assert store.prune().delete == ()  # 29 days: both young still
    clocks.advance(DAY - 1000)
    assert store.prune().delete == (first.id,)  # 30 days and 822 s old; the second 988 s short
    store.close()


def test_a_1970_boot_deletes_nothing_and_the_stamps_come_right(data_dir):
    """A Pi with no saved time boots at 1970: the clip is kept when the clock is set (its
    stamp would make it 55 years old), and corrected to its true time."""
    clocks = PiClocks(error=-TRUE0)
    store = clocks.store(data_dir, retention=MONTH, disk_free=lambda: 50 * GB)
    first = record(store, clocks)
    assert store.get(first.id).start == near(28.0)
    clocks.advance(7200)
    clocks.set_by_ntp()
    second = record(store, clocks)
    assert store.prune().delete == ()
    assert store.correct_times() == [first.id]
    assert store.get(first.id).start == near(TRUE0 + 28.0)
    assert store.get(second.id).start == near(TRUE0 + 7238.0)
    store.close()


def test_a_clock_2_hours_ahead_gets_its_times_corrected(data_dir):
    """Kept either way; the stamps, 2 h off for the session, are right once NTP sets the
    clock and correct_times runs."""
    clocks = PiClocks(error=7200)
    store = clocks.store(data_dir, retention=MONTH, disk_free=lambda: 50 * GB)
    first = record(store, clocks)
    assert store.get(first.id).start == near(TRUE0 + 28.0 + 7200)
    clocks.advance(600)
    clocks.set_by_ntp()
    assert store.correct_times() == [first.id]
    fixed = store.get(first.id)
    assert (fixed.start, fixed.end) == near((TRUE0 + 28.0, TRUE0 + 40.0))
    assert store.prune().delete == ()
    store.close()


def test_a_clock_that_never_synchronises(data_dir):
    """A LAN without a time server, clock 40 days behind for good: no age from the wall
    clock, nothing corrected, the clips marked uncertain; the space rule still deletes,
    oldest first by CLOCK_BOOTTIME; and a clip really past max_age (by CLOCK_BOOTTIME) goes."""
    clocks = PiClocks(error=-40 * DAY)
    free = [50 * GB]
    store = clocks.store(
        data_dir, retention=Rules(max_age=30 * DAY, min_free=1 * GB), disk_free=lambda: free[0]
    )
    ids = []
    for _ in range(3):
        ids.append(record(store, clocks).id)
        clocks.advance(DAY)
    assert store.prune().delete == () and store.correct_times() == []
    assert all(c.time_uncertain for c in store.list())
    free[0] = 1 * GB - 500  # short by 500 bytes: the oldest clip (1,000 bytes) goes
    assert store.prune().delete == (ids[0],)
    free[0] = 50 * GB
    clocks.advance(27 * DAY)  # ids[1] started 29 days 22 s ago, ids[2] 28 days 12 s ago
    assert store.prune().delete == ()
    clocks.advance(DAY)
    assert store.prune().delete == (ids[1],)
    store.close()


def test_oldest_first_puts_earlier_boots_before_a_1970_stamp_of_this_boot():
    """Short of space, a clip of this boot stamped 1970 is not taken for the oldest: every
    clip of an earlier boot was recorded before this boot began."""
    earlier = replace(clip(1, 5), boot_id="a", boot_start=50.0)
    stamped_1970 = replace(clip(2, 0), start=28.0, time_uncertain=True, boot_id="b", boot_start=28)
    later = replace(clip(3, 0), start=88.0, time_uncertain=True, boot_id="b", boot_start=88.0)
    state = ClockState(False, "b", 100.0)
    plan = plan_retention(
        [later, stamped_1970, earlier],
        now=100.0,
        free=0,
        rules=Rules(min_free=250 * MB),
        clock=state,
    )
    assert plan.delete == (earlier.id, stamped_1970.id, later.id)
    plan = plan_retention(
        [later, stamped_1970, earlier],
        now=100.0,
        free=0,
        rules=Rules(min_free=150 * MB),
        clock=state,
    )
    assert plan.delete == (earlier.id, stamped_1970.id)
