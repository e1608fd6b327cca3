"""The system clock as the kernel sees it: is it synchronised, which boot is this, how long since.

    state = clock.read()
    state.synchronised   # True, False, or None (cannot tell)
    state.boot_id        # "cdefc1b6-…" (changes at every boot), or None
    state.boottime       # seconds since boot (CLOCK_BOOTTIME: never stepped, counts suspend)
    clock.describe(state.synchronised)   # one line for the status page

A Raspberry Pi has no battery clock: it boots with the time fake-hwclock (or
systemd-timesyncd) saved at the last shutdown, or with 1970, and NTP steps it
right minutes or hours later, or never. Until then the wall clock (``time.time()``)
may be days off; CLOCK_BOOTTIME is not, because nothing ever sets it. A time
measured in CLOCK_BOOTTIME in this boot can be turned into a true wall time
once the clock is synchronised: ``wall_now - (boottime_now - boottime_then)``.

"Synchronised" is the kernel's NTP state, read with ``adjtimex(2)`` (modes 0:
read only; without CAP_SYS_TIME it can change nothing), judged as systemd's
timedated judges it for ``timedatectl``'s "System clock synchronized"
(``NTPSynchronized``): the maximum error the NTP client last set is below the
kernel's 16 s limit. The STA_UNSYNC flag (and so the TIME_ERROR return) is
ignored, as systemd ignores it: an NTP client may keep it set while synchronised,
to stop the kernel writing the RTC. The kernel raises the maximum error by 500 µs each second
without a correction, so a clock whose server went away counts as synchronised
for about 9 hours, then not. Where ``adjtimex`` is refused (systemd's
``ProtectClock=`` or a system-call filter without it: EPERM), the flag file
systemd-timesyncd keeps, ``/run/systemd/timesync/synchronized``, is the
fallback: it exists once timesyncd has synchronised in this boot. Neither
answer: ``None``.

Everything here is a pure function of what it is given, or reads one kernel
value; tests inject them and never depend on this machine's clock.
"""

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PLAUSIBLE_AFTER = 1_735_689_600.0  # 2025-01-01 UTC: no doorbell clip was recorded before
MAXERROR_LIMIT_US = 16_000_000  # the kernel's NTP_PHASE_LIMIT: maxerror stops there, unsynced
TIMESYNC_FLAG = Path("/run/systemd/timesync/synchronized")
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


@dataclass(frozen=True)
class Timex:
    """The fields of ``struct timex`` that matter here, as ``adjtimex`` returned them."""

    state: int  # adjtimex's return: TIME_OK (0) … TIME_ERROR (5)
    status: int  # STA_* bits; STA_UNSYNC is 0x40
    maxerror: int  # microseconds


@dataclass(frozen=True)
class ClockState:
    """What the clocks say at one moment (the wall clock itself is read by the caller)."""

    synchronised: bool | None  # None: cannot tell (adjtimex refused, no timesyncd flag)
    boot_id: str | None  # this boot's id; None off Linux
    boottime: float  # seconds since boot, CLOCK_BOOTTIME


def synchronised_from_timex(timex: Timex) -> bool:
    """Whether the kernel counts its clock as set by NTP: maxerror below 16 s (systemd's rule)."""
    return timex.maxerror < MAXERROR_LIMIT_US


@functools.cache
def _adjtimex() -> tuple[Any, Any] | None:
    """libc's ``adjtimex`` and a ``struct timex`` type for it, made once; None where
    there is none (not Linux). libc is the process's own (``CDLL(None)``): finding it
    by name would run ``ldconfig``, a fork and exec as a clip starts."""
    import ctypes

    class _Timex(ctypes.Structure):  # struct timex's head; the kernel writes the rest below
        _fields_ = [
            ("modes", ctypes.c_uint),
            ("offset", ctypes.c_long),
            ("freq", ctypes.c_long),
            ("maxerror", ctypes.c_long),
            ("esterror", ctypes.c_long),
            ("status", ctypes.c_int),
            ("rest", ctypes.c_byte * 512),  # more than any architecture's struct timex
        ]

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.adjtimex, _Timex
    except (OSError, AttributeError):
        return None


def read_timex() -> Timex | None:
    """The kernel's NTP state via ``adjtimex`` with modes 0 (read only); None where the
    call fails (EPERM under a system-call filter) or is missing (not Linux). Never
    raises: recording must not stop over a question about the clock."""
    import ctypes

    found = _adjtimex()
    if found is None:
        return None
    adjtimex, struct = found
    buffer = struct()  # modes 0: change nothing
    state = adjtimex(ctypes.byref(buffer))
    if state < 0:  # EPERM under a filter; any other failure is as little to go on
        return None
    return Timex(state, buffer.status, buffer.maxerror)


def synchronised(
    timex: Callable[[], Timex | None] = read_timex, flag: Path = TIMESYNC_FLAG
) -> bool | None:
    """True/False from ``adjtimex``; where that is refused, True if systemd-timesyncd's
    flag file exists, else None (cannot tell)."""
    reading = timex()
    if reading is not None:
        return synchronised_from_timex(reading)
    return True if flag.exists() else None


def boot_id(path: Path = BOOT_ID) -> str | None:
    """The kernel's random id of this boot (a new one at every boot); None if unreadable."""
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def boottime() -> float:
    """Seconds since boot by CLOCK_BOOTTIME (CLOCK_MONOTONIC where there is none)."""
    clock_id = getattr(time, "CLOCK_BOOTTIME", time.CLOCK_MONOTONIC)
    return time.clock_gettime(clock_id)


@functools.cache
def this_boot() -> str | None:
    """:func:`boot_id`, read once: it cannot change while the process lives."""
    return boot_id()


def read() -> ClockState:
    """The real clocks, now: the state the store and the service use by default."""
    return ClockState(synchronised(), this_boot(), boottime())


def plausible(when: float) -> bool:
    """Whether a Unix time can be a clip's true time (not before :data:`PLAUSIBLE_AFTER`,
    as a Pi that booted at 1970 would stamp it)."""
    return when >= PLAUSIBLE_AFTER


def describe(synced: bool | None) -> str:
    """The status page's one line about the clock (``synchronised`` as :func:`synchronised`)."""
    if synced is True:
        return "clock synchronised"
    if synced is False:
        return "clock not synchronised: clip times may be wrong until it is; see README, Time"
    return "clock synchronisation unknown: clip times may be wrong; see README, Time"
