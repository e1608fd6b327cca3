"""Retention: which clips to delete, as a pure function of the clips, the time and the disk.

    rules = Rules(max_age=30 * DAY, quota=8 * GB, min_free=500 * MB)
    plan = plan_retention(store.list(), now=time.time(), free=disk_free, rules=rules)
    plan.delete        # clip ids, oldest first
    plan.warning       # for the status page, or ""

Three limits, applied oldest clip first and never to a clip the owner kept:
clips older than ``max_age`` go; then, while all clips together pass
``quota`` (0: no quota) or the disk has less than ``min_free`` plus ``need``
free, the oldest unkept clips go. ``need`` is extra room asked for at the
moment (the size of the clip a full disk just cut short). If kept clips alone
pass the quota, or nothing is left to delete and the disk is still short, the
plan says so in ``warning``: kept clips are never deleted to make room.
"""

from collections.abc import Sequence
from dataclasses import dataclass

from doorbell.store.index import Clip

DAY = 86_400.0
MB = 1_000_000
GB = 1_000_000_000


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


def plan_retention(
    clips: Sequence[Clip], *, now: float, free: int, rules: Rules, need: int = 0
) -> Plan:
    """The clips to delete under ``rules``, oldest first, and a warning if that is not enough."""
    unkept = sorted((c for c in clips if not c.keep), key=lambda c: (c.start, c.id))
    total = sum(c.bytes for c in clips)
    kept = total - sum(c.bytes for c in unkept)
    delete: list[str] = []
    freed = 0
    for clip in unkept:
        too_old = now - clip.start > rules.max_age
        over_quota = rules.quota > 0 and total - freed > rules.quota
        short = free + freed < rules.min_free + need
        if not (too_old or over_quota or short):
            break  # every later clip is younger, and the limits are met
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
