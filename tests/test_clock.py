"""Time comes from clocks: the clock module, each clip's time fields, and their correction.

Every clock is injected (:class:`PiClocks`: CLOCK_BOOTTIME, a wall clock with
an error, NTP state, a boot id); no test depends on this machine's clock,
which here reports "not synchronised". One test runs the real ``adjtimex``
under a real seccomp filter, as the systemd unit's filter would refuse it.
"""

import os
import platform
import sqlite3
import subprocess
import sys

import pytest

from doorbell import clock
from doorbell.clock import ClockState, Timex
from doorbell.store import ClipStore

DAY = 86_400.0
TRUE0 = 1_750_000_000.0  # the true Unix time at boot (June 2025)


def near(expected):
    """Equal to the millisecond (pytest.approx's relative default is 30 min at 2025's times)."""
    return pytest.approx(expected, abs=1e-3)


class PiClocks:
    """A Raspberry Pi's clocks: CLOCK_BOOTTIME from boot, and a wall clock off by ``error``
    seconds until NTP sets it. ``advance`` moves both; ``set_by_ntp`` steps the wall clock
    right and synchronises it; ``reboot`` starts a new boot."""

    def __init__(self, error: float = 0.0, synced: bool | None = False, boot: str = "boot-a"):
        self.boottime = 30.0  # the service starts 30 s after boot
        self.error = error
        self.synced = synced
        self.boot = boot
        self.boot_at = TRUE0  # true time of this boot

    def wall(self) -> float:
        return self.boot_at + self.boottime + self.error

    def true(self) -> float:
        return self.boot_at + self.boottime

    def state(self) -> ClockState:
        return ClockState(self.synced, self.boot, self.boottime)

    def advance(self, seconds: float) -> None:
        self.boottime += seconds

    def set_by_ntp(self) -> None:
        self.error, self.synced = 0.0, True

    def reboot(self, boot: str, error: float, synced: bool | None = False) -> None:
        self.boot_at = self.true() + 60
        self.boottime, self.boot, self.error, self.synced = 30.0, boot, error, synced

    def store(self, data_dir, **options) -> ClipStore:
        return ClipStore.open(data_dir, clock=self.wall, clock_state=self.state, **options)


def record(store: ClipStore, clocks: PiClocks, seconds: float = 12.0, trigger: str = "bell"):
    """A clip like the recorder's: pre-roll of 2 s, ``seconds`` long, by the wall clock."""
    recording = store.new_clip(trigger, start=clocks.wall() - 2.0)
    recording.write_thumbnail(b"jpeg")
    recording.video.write(b"x" * 1000)
    clocks.advance(seconds - 2.0)
    return recording.finish(end=clocks.wall())


# --- the clock module ---------------------------------------------------------------------


def test_synchronised_is_systemds_rule_maxerror_below_16_s():
    """What this machine reports (TIME_ERROR, STA_UNSYNC, maxerror 16 s) is not synchronised;
    timesyncd's state is; chrony's STA_UNSYNC with a small maxerror is too (as in timedatectl)."""
    assert clock.synchronised_from_timex(Timex(5, 0x40, 16_000_000)) is False
    assert clock.synchronised_from_timex(Timex(0, 0x2001, 250_000)) is True
    assert clock.synchronised_from_timex(Timex(5, 0x2041, 15_999_999)) is True


def test_refused_adjtimex_falls_back_to_timesyncds_flag(tmp_path):
    """adjtimex refused (None): True if timesyncd's flag exists, else None; a reading wins."""
    flag = tmp_path / "synchronized"
    assert clock.synchronised(lambda: None, flag) is None
    flag.touch()
    assert clock.synchronised(lambda: None, flag) is True
    assert clock.synchronised(lambda: Timex(5, 0x40, 16_000_000), flag) is False


def test_the_real_adjtimex_reads_a_sane_state():
    """The ctypes layout is right: the maxerror the kernel gives is between 0 and 16 s
    (whatever this machine's state is)."""
    reading = clock.read_timex()
    if reading is None:
        pytest.skip("adjtimex is refused here")
    assert 0 <= reading.maxerror <= clock.MAXERROR_LIMIT_US
    assert 0 <= reading.state <= 5


SECCOMP_CHILD = """
import ctypes, errno, struct, sys
from doorbell import clock
ADJTIMEX, CLOCK_ADJTIME = {numbers}
def ins(code, jt, jf, k):
    return struct.pack("HBBI", code, jt, jf, k)
LD, JEQ, RET = 0x20, 0x15, 0x06
ERRNO_EPERM, ALLOW = 0x00050000 | errno.EPERM, 0x7FFF0000
program = b"".join([
    ins(LD, 0, 0, 0),  # seccomp_data.nr
    ins(JEQ, 2, 0, ADJTIMEX),
    ins(JEQ, 1, 0, CLOCK_ADJTIME),
    ins(RET, 0, 0, ALLOW),
    ins(RET, 0, 0, ERRNO_EPERM),
])
buffer = ctypes.create_string_buffer(program)
class Prog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
prog = Prog(len(program) // 8, ctypes.addressof(buffer))
libc = ctypes.CDLL(None, use_errno=True)
assert libc.prctl(38, 1, 0, 0, 0) == 0  # PR_SET_NO_NEW_PRIVS
assert libc.prctl(22, 2, ctypes.byref(prog), 0, 0) == 0, ctypes.get_errno()  # SECCOMP_MODE_FILTER
print(clock.read_timex(), clock.synchronised(flag=__import__("pathlib").Path(sys.argv[1])))
"""


def test_adjtimex_refused_by_a_seccomp_filter_is_unknown_not_an_error(tmp_path):
    """Under a real filter that refuses adjtimex with EPERM (as ProtectClock=yes does), the
    reading is None and the state falls back to the flag file (absent here: unknown)."""
    numbers = {"x86_64": (159, 305), "aarch64": (171, 266)}.get(platform.machine())
    if numbers is None:
        pytest.skip(f"no system-call numbers written down for {platform.machine()}")
    script = SECCOMP_CHILD.format(numbers=numbers)
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "absent")],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=os.path.dirname(os.path.dirname(__file__)),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["None", "None"]


def test_boot_id_and_boottime(tmp_path):
    """The boot id is the kernel file's text; unreadable is None. CLOCK_BOOTTIME only rises."""
    path = tmp_path / "boot_id"
    path.write_text("cdefc1b6-a144-4090-ae06-b61717c74c01\n")
    assert clock.boot_id(path) == "cdefc1b6-a144-4090-ae06-b61717c74c01"
    assert clock.boot_id(tmp_path / "missing") is None
    first = clock.boottime()
    assert 0 < first <= clock.boottime()


def test_describe_says_when_clip_times_may_be_wrong():
    assert clock.describe(True) == "clock synchronised"
    assert clock.describe(False) == (
        "clock not synchronised: clip times may be wrong until it is; see README, Time"
    )
    assert clock.describe(None).startswith("clock synchronisation unknown")


# --- each clip's time fields ----------------------------------------------------------------


def test_a_clip_started_before_the_clock_is_set_is_time_uncertain(data_dir):
    """Unsynchronised: uncertain, with its boot and CLOCK_BOOTTIME at its start (pre-roll
    included); synchronised: certain. Both rows read back as written."""
    clocks = PiClocks(error=-40 * DAY)
    store = clocks.store(data_dir)
    first = record(store, clocks)
    row = store.get(first.id)
    assert first == row  # what finish returns (and the "clip" event carries) is the row
    assert row.time_uncertain and row.boot_id == "boot-a"
    assert row.boot_start == near(30.0 - 2.0)
    assert row.start == near(TRUE0 + 28.0 - 40 * DAY)
    clocks.advance(600)
    clocks.set_by_ntp()
    second = store.get(record(store, clocks).id)
    assert not second.time_uncertain and second.boot_start == near(30 + 10 + 600 - 2)
    assert second.start == near(TRUE0 + 638.0)
    store.close()


def test_unknown_sync_state_counts_as_uncertain(data_dir):
    clocks = PiClocks(synced=None)
    store = clocks.store(data_dir)
    assert store.get(record(store, clocks).id).time_uncertain
    store.close()


def test_correct_times_gives_this_boots_clips_their_true_times(data_dir):
    """40 days behind, then NTP: the clip gets its true start and end, certain; its files'
    mtimes follow, so an index rebuilt from them has the true times too."""
    clocks = PiClocks(error=-40 * DAY)
    store = clocks.store(data_dir)
    clip = record(store, clocks)
    assert store.correct_times() == []  # not synchronised yet: nothing to go on
    clocks.advance(3600)
    clocks.set_by_ntp()
    assert store.correct_times() == [clip.id]
    fixed = store.get(clip.id)
    assert not fixed.time_uncertain
    assert fixed.start == near(TRUE0 + 28.0)
    assert fixed.end == near(TRUE0 + 40.0)
    assert store.path(clip.id, ".jpg.age").stat().st_mtime == near(TRUE0 + 28.0)
    assert store.path(clip.id, ".mp4.age").stat().st_mtime == near(TRUE0 + 40.0)
    assert store.correct_times() == []  # once only
    store.close()
    for suffix in ("", "-wal", "-shm"):
        (data_dir / f"index.sqlite3{suffix}").unlink(missing_ok=True)
    rebuilt = clocks.store(data_dir).get(clip.id)
    assert (rebuilt.start, rebuilt.end) == near((TRUE0 + 28.0, TRUE0 + 40.0))


def test_a_step_during_a_clip_does_not_skew_its_length(data_dir):
    """The clock is set by NTP while the clip records (start stamped by the old clock, end
    by the new): the row keeps the true 12 s length, and correction gives true times."""
    clocks = PiClocks(error=-7200)
    store = clocks.store(data_dir)
    recording = store.new_clip("bell", start=clocks.wall() - 2.0)
    recording.video.write(b"x")
    clocks.advance(5)
    clocks.set_by_ntp()
    clocks.advance(5)
    clip = recording.finish(end=clocks.wall())
    row = store.get(clip.id)
    assert row.duration == near(12.0)
    assert store.correct_times() == [clip.id]
    fixed = store.get(clip.id)
    assert (fixed.start, fixed.end) == near((TRUE0 + 28.0, TRUE0 + 40.0))
    store.close()


def test_a_clip_being_recorded_is_corrected_after_it_ends(data_dir):
    clocks = PiClocks(error=3600.0)
    store = clocks.store(data_dir)
    recording = store.new_clip("motion", start=clocks.wall())
    recording.video.write(b"x")
    clocks.set_by_ntp()
    assert store.correct_times() == []
    clocks.advance(10)
    clip = recording.finish(end=clocks.wall())
    assert store.correct_times() == [clip.id]
    assert store.get(clip.id).start == near(TRUE0 + 30.0)
    store.close()


def test_clips_of_an_earlier_boot_stay_uncertain(data_dir):
    """After a reboot nothing links the old boot's CLOCK_BOOTTIME to a true time."""
    clocks = PiClocks(error=-40 * DAY)
    store = clocks.store(data_dir)
    clip = record(store, clocks)
    clocks.reboot("boot-b", error=0.0, synced=True)
    assert store.correct_times() == []
    row = store.get(clip.id)
    assert row.time_uncertain and row.start == near(TRUE0 + 28.0 - 40 * DAY)
    store.close()


def test_a_keep_set_meanwhile_survives_correction(data_dir):
    clocks = PiClocks(error=-DAY)
    store = clocks.store(data_dir)
    clip = record(store, clocks)
    store.set_keep(clip.id, True)
    clocks.set_by_ntp()
    assert store.correct_times() == [clip.id]
    assert store.get(clip.id).keep
    store.close()


def test_an_index_from_before_the_time_columns_keeps_working(data_dir):
    """An old index (7 columns) gains the columns when opened: its rows are certain and of
    no known boot; nothing is rebuilt; new clips get the fields."""
    clocks = PiClocks(synced=True)
    store = clocks.store(data_dir)
    old = record(store, clocks)
    store.close()
    db = sqlite3.connect(data_dir / "index.sqlite3")
    for column in ("time_uncertain", "boot_id", "boot_start"):
        db.execute(f"ALTER TABLE clips DROP COLUMN {column}")
    db.commit()
    db.close()
    assert "boot_id" not in _columns(data_dir)
    clocks.synced = False
    store = clocks.store(data_dir)
    assert store.report.rebuilt is None
    row = store.get(old.id)
    assert (row.time_uncertain, row.boot_id, row.boot_start) == (False, None, None)
    assert row.start == near(old.start)
    assert store.get(record(store, clocks).id).time_uncertain
    store.close()
    assert {"time_uncertain", "boot_id", "boot_start"} <= _columns(data_dir)


def _columns(data_dir) -> set[str]:
    db = sqlite3.connect(data_dir / "index.sqlite3")
    try:
        return {row[1] for row in db.execute("PRAGMA table_info(clips)")}
    finally:
        db.close()


def test_a_rebuilt_row_stamped_1970_is_uncertain(data_dir):
    """Rebuilt from the files, a clip's boot is unknown: a 1970 mtime cannot be its true
    time (uncertain); a plausible one is believed (certain)."""
    clocks = PiClocks(error=-TRUE0)  # booted at 1970
    store = clocks.store(data_dir)
    old = record(store, clocks)
    clocks.set_by_ntp()
    new = record(store, clocks)
    store.close()
    for suffix in ("", "-wal", "-shm"):
        (data_dir / f"index.sqlite3{suffix}").unlink(missing_ok=True)
    store = clocks.store(data_dir)
    assert store.report.rebuilt == "no index file"
    assert store.get(old.id).time_uncertain and store.get(old.id).start < 100
    assert not store.get(new.id).time_uncertain
    store.close()
