"""A full disk (a real tmpfs that fills up) never corrupts: files end at their last whole
chunk, retention frees space, recording goes on, nothing stored is harmed (law 5)."""

import os
import subprocess

import pytest

from doorbell import vault
from doorbell.vault.stream import CHUNK_SIZE


@pytest.fixture
def owner():
    identity = vault.X25519Identity.generate()
    return identity, identity.recipient


def fill(path, leave: int) -> None:
    """Fill the file system holding ``path`` until ``leave`` bytes are free."""
    with open(path, "wb") as file:
        while (free := os.statvfs(path).f_bavail * os.statvfs(path).f_frsize) > leave:
            file.write(b"\0" * min(free - leave, 1 << 20))


def write_until_full(path, recipient, data: bytes) -> vault.DiskFullError:
    writer = vault.create(path, [recipient])
    with pytest.raises(vault.DiskFullError) as info:
        for start in range(0, len(data), 10_000):
            writer.write(data[start : start + 10_000])
        writer.close()
    return info.value


@pytest.mark.cli
def test_the_file_ends_at_its_last_whole_chunk(small_disk, owner, tmp_path):
    """Writing 2 MB onto 1 MB: a whole age file of the chunks that fit, which `age` opens."""
    identity, recipient = owner
    disk = small_disk(1 << 20)
    data = os.urandom(2 << 20)
    err = write_until_full(disk / "clip.age", recipient, data)
    assert err.filename == str(disk / "clip.age") and "ended early" in str(err)
    assert err.kept > 0 and err.kept % CHUNK_SIZE == 0
    assert not (disk / "clip.age.part").exists()
    keyfile = tmp_path / "key.txt"
    keyfile.write_text(identity.secret() + "\n")
    out = subprocess.run(
        ["age", "-d", "-i", str(keyfile), str(disk / "clip.age")],
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    assert out == data[: err.kept]


def test_a_full_disk_at_the_final_chunk_still_finishes(small_disk, owner):
    """Space runs out just at the final chunk: the chunk before is sealed again as the final one."""
    identity, recipient = owner
    disk = small_disk(1 << 20)
    page = os.statvfs(disk).f_frsize
    # Room for the header and three whole chunks (49 pages), not for a final chunk of 4000 B.
    fill(disk / "filler", leave=-(-(200 + 3 * (CHUNK_SIZE + 16)) // page) * page)
    data = os.urandom(3 * CHUNK_SIZE + 4000)
    err = write_until_full(disk / "clip.age", recipient, data)
    assert err.kept == 3 * CHUNK_SIZE
    with vault.open_file(disk / "clip.age", [identity]) as reader:
        assert reader.read() == data[: 3 * CHUNK_SIZE]


def test_nothing_whole_written_removes_the_file(small_disk, owner):
    """A full disk before the first chunk is whole: no file at all, rather than a broken one."""
    _, recipient = owner
    disk = small_disk(256 << 10)
    fill(disk / "filler", leave=0)
    writer_error = None
    try:
        writer = vault.create(disk / "clip.age", [recipient])
        writer.write(os.urandom(3 * CHUNK_SIZE))
        writer.close()
    except vault.DiskFullError as err:
        writer_error = err
    assert writer_error is not None and writer_error.kept == 0
    assert sorted(p.name for p in disk.iterdir()) == ["filler"]


def test_other_write_errors_are_not_taken_for_a_full_disk(tmp_path, owner):
    """Only ENOSPC and EDQUOT end a file early; anything else leaves the .part, recoverable."""
    assert vault.is_disk_full(OSError(28, "No space left on device"))
    assert vault.is_disk_full(OSError(122, "Disk quota exceeded"))
    assert not vault.is_disk_full(OSError(5, "Input/output error"))
    assert not vault.is_disk_full(ValueError())


# -- the recorder on a full disk -------------------------------------------------------


def noise_packets(count: int, fps: float = 15.0):
    """H.264 packets of random pictures (they hardly compress: ~15 KB each), timed from 0."""
    import numpy as np

    from doorbell.codec import H264Encoder

    encoder = H264Encoder(160, 120, fps, keyframe_interval=1.0)
    rng = np.random.default_rng(7)
    packets = []
    for i in range(count):
        packets += encoder.encode(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8), i / fps)
    return encoder.stream_info(), packets + encoder.flush()


def test_a_clip_that_fills_the_disk_is_closed_retention_frees_room_recording_goes_on(
    small_disk,
):
    """4 MB disk, a kept and an old clip on it, then 2.3 MB of new video: the clip ends at
    its last whole chunk, the old clip is deleted, a new clip carries on, the kept one is intact."""
    from doorbell.recorder import Recorder
    from doorbell.store import ClipStore, Keyring, Rules
    from doorbell.trigger import Start
    from tests.conftest import PASSPHRASE, decodable_frames, find_plaintext

    data = small_disk(4 << 20)
    keyring = Keyring.in_data_dir(data)
    keyring.init(PASSPHRASE, work_factor=10)
    identities = keyring.unlock(PASSPHRASE)
    rules = Rules(max_age=30 * 86400, min_free=0)
    store = ClipStore(data, keyring.recipients, retention=rules, clock=lambda: 5000.0)
    old = {}
    for name, start in (("kept", 100.0), ("old", 200.0)):
        recording = store.new_clip("motion", start=start)
        old[name] = os.urandom(1_000_000)
        recording.video.write(old[name])
        old[name + "_id"] = recording.finish(end=start + 10).id
    store.set_keep(old["kept_id"], True)

    info, packets = noise_packets(45)
    per_pass = sum(len(p.data) for p in packets)
    recorder = Recorder(store, info, pre_roll=1.0, wall_time=lambda t: 1000.0 + t)
    recorder.add(packets[:1])
    recorder.apply([Start(at=0.0, since=0.0, trigger="bell")])
    fed = 0
    offset = 0.0
    while fed < 2_300_000:
        recorder.add(
            type(p)(p.at + offset, p.keyframe, p.data) for p in packets[1 if not fed else 0 :]
        )
        fed += per_pass
        offset += len(packets) / info.fps
    recorder.stop(offset)

    assert [r.clip.trigger for r in recorder.finished] == ["bell", "bell"]
    first, second = (r.clip for r in recorder.finished)
    assert first.start < second.start <= first.end  # it overlaps: no moment is lost
    clips = {c.id: c for c in store.list()}
    assert old["old_id"] not in clips  # retention made room: the oldest unkept clip went
    assert set(clips) == {old["kept_id"], first.id, second.id}
    assert all(c.state == "complete" for c in clips.values())
    with store.open_video(old["kept_id"], identities) as reader:
        assert reader.read() == old["kept"]  # nothing already stored is harmed
    for clip in (first, second):
        with store.open_video(clip.id, identities) as reader:
            mp4 = reader.read()
        assert decodable_frames(mp4) > 10
        assert find_plaintext(data, mp4) == []  # law 1 holds on a full disk too
    assert not [p for p in (data / "clips").iterdir() if p.name.endswith(".part")]
    assert not recorder.disk_full
    store.close()


def test_a_full_disk_under_the_index_is_the_stores_own_error(small_disk, owner):
    """SQLite's "database or disk is full" reaches callers as ``StoreFullError``: an OSError
    with errno ENOSPC naming the index, which ``vault.is_disk_full`` and the recorder know
    by its kind, not by reading SQLite's message. Other database errors stay what they are."""
    import errno
    import sqlite3

    from doorbell.recorder import out_of_space
    from doorbell.store import ClipStore, StoreFullError
    from doorbell.store.index import Clip

    data = small_disk(1 << 20)
    _, recipient = owner
    store = ClipStore(data, lambda: [recipient])
    fill(data / "filler", leave=0)
    with pytest.raises(StoreFullError) as info:
        for n in range(100_000):
            store.index.put(Clip(f"{n:016x}", float(n), None, "x" * 500, 0, False, "recording"))
    err = info.value
    assert err.errno == errno.ENOSPC and vault.is_disk_full(err) and out_of_space(err)
    assert str(err).startswith(f"{data / 'index.sqlite3'}: disk full")
    (data / "filler").unlink()
    store.index.put(Clip("f" * 16, 1.0, 2.0, "bell", 0, False, "complete"))  # room again
    assert store.index.get("f" * 16) is not None
    assert not out_of_space(sqlite3.OperationalError("database or disk is full"))
    store.close()
