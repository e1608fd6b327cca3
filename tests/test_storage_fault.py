"""A read-only, failing or vanished data folder is a storage fault, not a camera error: the
recorder says so in one line, keeps taking frames, and resumes by itself once the folder
takes writes again. Real mounts: a tmpfs remounted read-only, an ext4 image whose file
system is shut down under an open clip (every I/O then fails with EIO, as a dying card's
does). Skipped, with the reason, where the machine cannot mount."""

import asyncio
import errno
import fcntl
import logging
import os
import shutil
import sqlite3
import struct
import subprocess
from pathlib import Path

import pytest

from doorbell import vault
from doorbell.cli import main
from doorbell.faults import storage_fault
from doorbell.recorder import RETRY_SECONDS, Recorder
from doorbell.store import ClipStore, Keyring
from doorbell.store.index import StorageError, storage_errno
from doorbell.trigger import Start
from tests.conftest import PASSPHRASE
from tests.test_disk_full import NoiseCamera, strict_frames
from tests.test_store import decrypted

EXT4_IOC_SHUTDOWN = 0x8004587D  # _IOR('X', 125, __u32)
EXT4_GOING_FLAGS_LOGFLUSH = 1


def run(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, check=False)


class Mounts:
    """Mounts made by a test, undone at its end (lazily, should a file still be open)."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.points: list[Path] = []

    def mount(self, *argv: str) -> None:
        done = run("mount", *argv)
        if done.returncode != 0:
            pytest.skip(f"cannot mount here (needs root): {done.stderr.strip()}")
        self.points.append(Path(argv[-1]))

    def tmpfs(self, point: Path, size: int = 8 << 20) -> None:
        point.mkdir(parents=True, exist_ok=True)
        self.mount("-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(point))

    def ext4(self, point: Path, size: int = 16 << 20) -> Path:
        if shutil.which("mkfs.ext4") is None:
            pytest.skip("mkfs.ext4 is not installed (e2fsprogs): no ext4 image to fail")
        image = self.tmp_path / "card.img"
        with open(image, "wb") as file:
            file.truncate(size)
        made = run("mkfs.ext4", "-q", "-F", str(image))
        assert made.returncode == 0, made.stderr
        point.mkdir(parents=True, exist_ok=True)
        self.mount("-o", "loop", str(image), str(point))
        return image

    def remount(self, point: Path, how: str) -> None:
        done = run("mount", "-o", f"remount,{how}", str(point))
        assert done.returncode == 0, done.stderr

    def undo(self) -> None:
        for point in reversed(self.points):
            run("umount", "-l", str(point))


@pytest.fixture
def mounts(tmp_path):
    made = Mounts(tmp_path)
    yield made
    made.undo()


def owner_data(tmp_path: Path):
    data = tmp_path / "data"
    keyring = Keyring.in_data_dir(data)
    keyring.init(PASSPHRASE, work_factor=10)
    return data, keyring


def recorder_for(store: ClipStore, camera: NoiseCamera, events: list) -> Recorder:
    return Recorder(
        store,
        camera.info,
        pre_roll=1.0,
        wall_time=lambda t: 1_800_000_000.0 + t,
        on_clip=lambda kind, detail: events.append((kind, detail)),
    )


def run_until(recorder: Recorder, camera: NoiseCamera, done, seconds: float) -> float:
    """Feed frames until ``done()`` or ``seconds`` of camera time; the camera time it took."""
    begin = camera.at
    while not done() and camera.at < begin + seconds:
        recorder.add(camera.packets(0.2))
    return camera.at - begin


def test_a_read_only_clip_folder_is_a_storage_fault_until_it_is_writable_again(
    tmp_path, mounts, caplog
):
    """The clip folder is remounted read-only while the doorbell is idle; the bell rings:
    no exception reaches the camera thread, the fault says what and where, frames go on
    into the pre-roll; remounted read-write, recording resumes by itself within the retry
    interval with a clip (the bell's, still wanted) that plays to its end."""
    caplog.set_level(logging.INFO)
    data, keyring = owner_data(tmp_path)
    mounts.tmpfs(data / "clips")
    store = ClipStore(data, keyring.recipients, clock=lambda: 1_800_000_000.0 + camera.at)
    camera = NoiseCamera()
    events: list = []
    recorder = recorder_for(store, camera, events)
    recorder.add(camera.packets(2.0))
    mounts.remount(data / "clips", "ro")

    recorder.apply([Start(at=camera.at, since=camera.at - 1.0, trigger="bell")])
    expected = (
        f"storage fault: {data}: read-only file system; nothing is recorded until it is "
        "writable again"
    )
    assert recorder.fault == expected and not recorder.recording and not recorder.disk_full
    recorder.add(camera.packets(12.0))  # two retries fail; the ring keeps the last seconds
    assert recorder.fault == expected and events == []
    assert len(recorder.ring) > 0 and recorder.ring.since(camera.at - 1.0)[0].keyframe
    assert store.list(states=("recording", "partial", "complete")) == []  # no row left over
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [expected]  # once, however long it lasts

    mounts.remount(data / "clips", "rw")
    took = run_until(recorder, camera, lambda: recorder.fault is None, RETRY_SECONDS + 1)
    assert took <= RETRY_SECONDS + 0.2 and recorder.recording
    assert events == [("started", "bell")]
    assert f"recording resumed: {data} takes writes again" in caplog.text
    recorder.add(camera.packets(2.0))
    done = recorder.stop(camera.at)
    assert done is not None and done.clip.state == "complete"
    assert done.start_at <= camera.at - 3.0  # it began with the pre-roll before the resume
    identities = keyring.unlock(PASSPHRASE)
    assert strict_frames(decrypted(store, done.clip.id, identities)) >= 45
    store.close()


def test_a_card_failing_under_an_open_clip_leaves_it_partial_and_recording_resumes(
    tmp_path, mounts, caplog
):
    """The clip folder's file system fails mid-clip (ext4 shut down: EIO on every write,
    fsync and open, as a dying card): the clip is left partial, the fault names the folder
    and the error, no exception reaches the camera thread. The card back (mounted again):
    recording resumes, and the next start keeps the cut clip as it is (no identity
    needed): `decrypt --recover` gives back whole fragments that play to their end."""
    caplog.set_level(logging.INFO)
    data, keyring = owner_data(tmp_path)
    image = mounts.ext4(data / "clips")
    store = ClipStore(data, keyring.recipients, fsync_interval=0.0)
    camera = NoiseCamera()
    events: list = []
    recorder = recorder_for(store, camera, events)
    recorder.add(camera.packets(1.0))
    recorder.apply([Start(at=camera.at, since=camera.at - 1.0, trigger="bell")])
    recorder.add(camera.packets(3.0))
    assert events == [("started", "bell")]
    [partial] = store.list(states=("recording",))

    folder = data / "clips"
    os.sync()  # what was written so far reached the card (the writer's own fsync is async)
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.ioctl(fd, EXT4_IOC_SHUTDOWN, struct.pack("I", EXT4_GOING_FLAGS_LOGFLUSH))
    finally:
        os.close(fd)
    run_until(recorder, camera, lambda: recorder.fault is not None, 3.0)
    expected = (
        f"storage fault: {data}: input/output error; nothing is recorded until it is writable again"
    )
    assert recorder.fault == expected and not recorder.recording
    assert store.get(partial.id).state == "partial"  # left as a crash would leave it
    recorder.add(camera.packets(6.0))  # the retry finds the folder failing still
    assert recorder.fault == expected and len(events) == 1

    done = run("umount", str(folder))  # nothing of the recorder's is open on it now
    assert done.returncode == 0, done.stderr
    mounts.points.remove(folder)
    mounts.mount("-o", "loop", str(image), str(folder))
    took = run_until(recorder, camera, lambda: recorder.fault is None, RETRY_SECONDS + 1)
    assert took <= RETRY_SECONDS + 0.2 and recorder.recording
    recorder.add(camera.packets(1.0))
    assert recorder.stop(camera.at) is not None

    store.close()

    store = ClipStore(data, keyring.recipients)  # the next start
    assert store.report.partial == [partial.id] and store.get(partial.id).state == "partial"
    video = store.path(partial.id, ".mp4.age")
    identity = tmp_path / "identity.txt"
    identity.write_text(keyring.unlock(PASSPHRASE)[0].secret() + "\n")
    out = tmp_path / "out.mp4"
    argv = ["decrypt", "--recover", "-i", str(identity), "-o", str(out), str(video)]
    assert main(argv) == 0
    assert strict_frames(out.read_bytes()) > 0
    store.close()


def test_an_index_on_a_read_only_disk_is_a_storage_error_not_a_corrupt_index(tmp_path, mounts):
    """Opened on a read-only mount, the index says so (EROFS, naming the file) instead of
    being taken for corrupt and moved aside; SQLite's own error codes map by the folder's
    state."""
    data, keyring = owner_data(tmp_path / "x")
    mounts.tmpfs(tmp_path / "card")
    shutil.copytree(data, tmp_path / "card" / "data")
    data = tmp_path / "card" / "data"
    ClipStore(data, keyring.recipients).close()
    mounts.remount(tmp_path / "card", "ro")
    with pytest.raises(StorageError) as caught:
        ClipStore(data, keyring.recipients)
    err = caught.value
    assert (
        err.errno == errno.EROFS and str(err) == f"{data / 'index.sqlite3'}: Read-only file system"
    )
    assert sorted(p.name for p in data.iterdir()) == ["clips", "index.sqlite3", "keys"]

    raw = sqlite3.connect(data / "index.sqlite3")  # the error as SQLite gives it
    with pytest.raises(sqlite3.OperationalError) as sqlite_error:
        raw.execute("PRAGMA journal_mode=WAL")
    raw.close()
    assert sqlite_error.value.sqlite_errorcode == sqlite3.SQLITE_CANTOPEN
    assert storage_errno(sqlite_error.value, data / "index.sqlite3") == errno.EROFS

    mounts.remount(tmp_path / "card", "rw")
    ClipStore(data, keyring.recipients).close()  # writable again: it opens as before


def test_the_kinds_of_failure_and_their_lines():
    """What stops recording and what does not, and the fault's wording per errno."""
    from doorbell.faults import disk_full_fault, out_of_space, storage_failure

    for code in (errno.EROFS, errno.EIO, errno.EACCES, errno.ENOENT):
        assert storage_failure(OSError(code, "x")) and not out_of_space(OSError(code, "x"))
    assert out_of_space(vault.DiskFullError("f", 0)) and not storage_failure(OSError(28, "x"))
    assert not storage_failure(ValueError()) and not storage_failure(OSError("no errno"))
    assert disk_full_fault(3_200_000_000, 0) == (
        "disk full: kept clips use 3.2 GB; nothing is recorded until there is room (unkeep "
        "or delete clips)"
    )
    assert disk_full_fault(3_200_000_000, 40_000_000).startswith(
        "disk full: kept clips use 3.2 GB and clips recorded since it filled 40 MB; "
    )
    assert disk_full_fault(0, 0).startswith("disk full: other files than clips fill it; ")
    assert storage_fault("/d", OSError(errno.EACCES, "x")) == (
        "storage fault: /d: permission denied; nothing is recorded until it is writable again"
    )
    assert storage_fault("/d", StorageError(Path("/d/index.sqlite3"), errno.EIO)).startswith(
        "storage fault: /d: input/output error;"
    )


async def test_a_service_started_on_a_read_only_card_says_so_in_one_line(tmp_path, mounts):
    """The card is read-only when the doorbell starts: one line naming the folder, the
    fault and what happens next (systemd starts it again), no traceback, no index moved."""
    import dataclasses

    from doorbell.config import Config, StorageSettings, WebSettings
    from doorbell.service import DataFolderError, Service

    data, keyring = owner_data(tmp_path / "x")
    mounts.tmpfs(tmp_path / "card")
    shutil.copytree(data, tmp_path / "card" / "data")
    data = tmp_path / "card" / "data"
    ClipStore(data, keyring.recipients).close()
    mounts.remount(tmp_path / "card", "ro")
    config = dataclasses.replace(
        Config(),
        storage=StorageSettings(data_dir=str(data), min_free_mb=0),
        web=WebSettings(listen="127.0.0.1:0", tls="off"),
    )
    with pytest.raises(DataFolderError) as caught:
        await Service(config, demo=True).run(asyncio.Event())
    assert str(caught.value) == (
        f"storage fault: {data}: read-only file system; the doorbell starts once it is "
        "writable (under systemd it tries again every 5 s)"
    )
