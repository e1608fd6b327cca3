"""A clip's times when the wall clock may be wrong: what to record, and how to correct it.

Pure functions of a row, the wall clock's ``now`` (Unix seconds) and the clocks'
state (:class:`doorbell.clock.ClockState`); :class:`~doorbell.store.ClipStore`
carries them out. A clip started while the clock is not known synchronised is
*time-uncertain* and records its boot and CLOCK_BOOTTIME at its start; once the
clock is synchronised, in the same boot, its true start is
``now - (boottime_now - boot_start)``. After a reboot nothing links the old
boot's CLOCK_BOOTTIME to a true time, so its uncertain clips stay uncertain.
"""

from collections.abc import Container, Iterable, Iterator
from dataclasses import dataclass, replace

from doorbell.clock import ClockState
from doorbell.store.index import Clip

STEP = 1.0  # seconds: a clip whose wall-clock length is off by more saw the clock stepped


@dataclass(frozen=True)
class Correction:
    clip_id: str
    start: float  # true Unix seconds
    end: float | None
    shift: float  # seconds added to the old times


def new_clip_fields(start: float, now: float, clock: ClockState) -> tuple[bool, str | None, float]:
    """``(time_uncertain, boot_id, boot_start)`` of a clip starting at ``start`` (the
    wall clock's, ``now - start`` seconds of pre-roll ago): uncertain unless the clock is
    known synchronised (unknown counts as not); CLOCK_BOOTTIME at ``start``."""
    return clock.synchronised is not True, clock.boot_id, clock.boottime - (now - start)


def finished(clip: Clip, row: Clip, now: float, clock: ClockState) -> Clip:
    """``clip`` as its recording finished it (time fields at their defaults), with the
    time fields of its index ``row``. If the clock stepped (by more than :data:`STEP`)
    during a time-uncertain clip of this boot, its end is restated in the clock of its
    start, by the length CLOCK_BOOTTIME measured, so the step skews neither its length
    nor its later correction. ``now`` is the wall clock read just after ``clock``."""
    clip = replace(
        clip, time_uncertain=row.time_uncertain, boot_id=row.boot_id, boot_start=row.boot_start
    )
    if not clip.time_uncertain or clip.end is None or clip.boot_start is None:
        return clip
    if clock.boot_id is None or clock.boot_id != clip.boot_id:
        return clip
    length = clock.boottime - (now - clip.end) - clip.boot_start
    if abs(length - (clip.end - clip.start)) <= STEP:
        return clip
    return replace(clip, end=clip.start + max(0.0, length))


def corrections(
    uncertain: Iterable[Clip], now: float, clock: ClockState, busy: Container[str] = ()
) -> Iterator[Correction]:
    """The true times of the time-uncertain clips of this boot, once the clock is
    synchronised (none before). Clips in ``busy`` (being recorded) wait for a later call."""
    if clock.synchronised is not True or clock.boot_id is None:
        return
    for clip in uncertain:
        if (
            not clip.time_uncertain
            or clip.boot_id != clock.boot_id
            or clip.boot_start is None
            or clip.state == "recording"
            or clip.id in busy
        ):
            continue
        shift = now - (clock.boottime - clip.boot_start) - clip.start
        end = None if clip.end is None else clip.end + shift
        yield Correction(clip.id, clip.start + shift, end, shift)
