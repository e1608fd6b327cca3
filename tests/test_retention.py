"""Retention: oldest unkept clips first, by age, quota and free space; kept clips never."""

from doorbell.store import Clip, ClipStore, Rules, plan_retention
from doorbell.store.retention import DAY, GB, MB

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
    store = ClipStore.open(
        data_dir, clock=lambda: now[0], retention=Rules(max_age=30 * DAY), disk_free=lambda: 50 * GB
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
