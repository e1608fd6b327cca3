"""Retention: which clips to delete, as a pure function of the clips, the clocks and the disk.

    rules = Rules(max_age=30 * DAY, quota=8 * GB, min_free=500 * MB)
    plan = plan_retention(store.list(), now=time.time(), free=disk_free, rules=rules,
                          clock=clock.read())
    plan.delete        # clip ids, oldest first
    plan.warning       # for the status page, or ""

Three limits, never applied to a clip the owner kept: clips older than
``max_age`` go; then, while all clips together pass ``quota`` (0: no quota)
or the disk has less than ``min_free`` plus ``need`` free, the oldest unkept
clips go. ``need`` is extra room asked for at the moment (the size of the clip
a full disk just cut short). If kept clips alone pass the quota, or nothing
is left to delete and the disk is still short, the plan says so in
``warning``: kept clips are never deleted to make room.

A Raspberry Pi's wall clock can be days off until NTP sets it (see
:mod:`doorbell.clock`), so an age is never taken from a clock that may have
stepped. :func:`true_age` gives the least age a clip can really have:

- a clip of this boot: CLOCK_BOOTTIME now minus CLOCK_BOOTTIME at its start
  (exact; that clock is never set, so it holds whatever the wall clock did);
- a clip with a certain time, while the clock is synchronised: now minus its start;
- a clip of an earlier boot otherwise: at least the time since this boot began;
- anything else (a row from before boot ids, or rebuilt from the files, while
  the clock is not synchronised; or when the sync state is unknown): unknown,
  and the age limit does not apply to it.

So with a clock that is not (or not known to be) synchronised, only ages
measured in CLOCK_BOOTTIME count, and a clip stamped 40 days back by a clock
that was 40 days behind is as old as it really is. Space limits always apply.

"Oldest first" for the space limits is the true order where it is known:
every clip of an earlier boot before every clip of this boot (they were
recorded before it began), this boot's clips by CLOCK_BOOTTIME, earlier boots'
clips by their stamps (which may be wrong for time-uncertain ones: a 1970
stamp sorts first among them, never before a clip of this boot).
"""

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

from doorbell.clock import ClockState
from doorbell.config import StorageSettings
from doorbell.store.index import Clip

DAY = 86_400.0
MB = 1_000_000
GB = 1_000_000_000

# No clock facts (a caller that passes none): the wall clock is taken as right and
# no clip is known to be of this boot, which is how retention worked before boot ids.
WALL_CLOCK_TRUSTED = ClockState(synchronised=True, boot_id=None, boottime=0.0)


@dataclass(frozen=True)
class Rules:
    max_age: float = 30 * DAY  # seconds
    quota: int = 0  # bytes of all clips together; 0: none
    min_free: int = 500 * MB  # bytes to leave free on the disk


@dataclass(frozen=True)
class Plan:
    delete: tuple[str, ...]
    freed: int  # bytes the deletions give back
    warning: str = ""


def _size(n: float) -> str:
    return f"{n / GB:.1f} GB" if n >= GB / 10 else f"{n / MB:.0f} MB"


def _this_boot(clip: Clip, clock: ClockState) -> bool:
    return clock.boot_id is not None and clip.boot_id == clock.boot_id


def true_age(clip: Clip, *, now: float, clock: ClockState) -> float | None:
    """The least age in seconds ``clip`` can really have, from clocks that did not step;
    None if nothing says (see the module's docstring for the four cases)."""
    if _this_boot(clip, clock) and clip.boot_start is not None:
        return clock.boottime - clip.boot_start
    if clock.synchronised is True and not clip.time_uncertain:
        return now - clip.start
    if clock.boot_id is not None and clip.boot_id is not None:  # an earlier boot
        return clock.boottime
    return None


def oldest_first(clock: ClockState) -> Callable[[Clip], tuple]:
    """The sort key of the true recording order, as far as the clocks tell it."""

    def key(clip: Clip) -> tuple:
        if _this_boot(clip, clock) and clip.boot_start is not None:
            return (1, clip.boot_start, clip.id)
        return (0, clip.start, clip.id)

    return key


def plan_retention(
    clips: Sequence[Clip],
    *,
    now: float,
    free: int,
    rules: Rules,
    need: int = 0,
    clock: ClockState = WALL_CLOCK_TRUSTED,
    protect: Collection[str] = frozenset(),
) -> Plan:
    """The clips to delete under ``rules``, oldest first, and a warning if that is not enough.

    ``now`` is the wall clock (Unix seconds), ``free`` and ``need`` bytes, ``clock``
    the clocks' state at ``now`` (:func:`doorbell.clock.read`). Clips in ``protect``
    (ids: those recorded while the disk is short, see ``ClipStore.short_of_space``) go
    by age only, never to make room."""
    unkept = sorted((c for c in clips if not c.keep), key=oldest_first(clock))
    total = sum(c.bytes for c in clips)
    kept = total - sum(c.bytes for c in unkept)
    delete: list[str] = []
    freed = 0
    for clip in unkept:  # ages need not rise along the order: every clip is looked at
        age = true_age(clip, now=now, clock=clock)
        too_old = age is not None and age > rules.max_age
        over_quota = rules.quota > 0 and total - freed > rules.quota
        short = free + freed < rules.min_free + need
        if too_old or ((over_quota or short) and clip.id not in protect):
            delete.append(clip.id)
            freed += clip.bytes
    warnings = []
    if rules.quota and kept > rules.quota:
        warnings.append(
            f"kept clips alone use {_size(kept)}, more than the {_size(rules.quota)} quota: "
            "unkeep some, or raise quota_gb"
        )
    if free + freed < rules.min_free + need:
        warnings.append(
            f"the disk is short of space ({_size(free + freed)} free, "
            f"{_size(rules.min_free + need)} wanted) and no unkept clip is left to delete"
        )
    return Plan(tuple(delete), freed, "; ".join(warnings))


def retention_rules(storage: StorageSettings) -> Rules:
    """The config's ``[storage]`` settings as retention rules (seconds and bytes)."""
    return Rules(
        max_age=storage.max_age_days * DAY,
        quota=round(storage.quota_gb * GB),
        min_free=storage.min_free_mb * MB,
    )
