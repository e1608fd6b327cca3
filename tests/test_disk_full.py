"""A full disk (a real tmpfs that fills up) never corrupts: files end at their last whole
chunk, retention frees space, recording goes on, nothing stored is harmed (law 5)."""

import os
import subprocess

import pytest

from doorbell import vault
from doorbell.vault.stream import CHUNK_SIZE
from tests.test_store import decrypted


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


class NoiseCamera:
    """Noise packets in camera time, as long as asked for: one 3 s pass repeated, a
    keyframe a second. ``at`` is the last packet's time."""

    def __init__(self) -> None:
        self.info, self._pass = noise_packets(45)
        self.at = -1.0 / self.info.fps
        self._next = 0
        self._offset = 0.0

    def packets(self, seconds: float) -> list:
        from doorbell.camera import EncodedPacket

        out = []
        end = self.at + seconds
        while self.at < end - 1e-9:
            packet = self._pass[self._next]
            out.append(EncodedPacket(packet.at + self._offset, packet.keyframe, packet.data))
            self.at = out[-1].at
            self._next += 1
            if self._next == len(self._pass):
                self._next = 0
                self._offset += len(self._pass) / self.info.fps
        return out


def strict_frames(mp4: bytes) -> int:
    """Frames of an MP4 decoded to its end with every error raised, as `ffmpeg -xerror`
    and Chromium do (unlike ``decodable_frames``, which stops quietly at the damage)."""
    import io

    import av

    frames = 0
    with av.open(io.BytesIO(mp4)) as container:
        for packet in container.demux(video=0):
            frames += len(packet.decode())
    return frames


def test_a_marked_file_ends_at_its_last_mark_on_the_disk(small_disk, owner):
    """Units of 50 000 bytes, each marked as written, onto 1 MB: the file ends at a mark
    (whole units only), as many as reached the disk, and decrypts to exactly them."""
    identity, recipient = owner
    disk = small_disk(1 << 20)
    data = os.urandom(40 * 50_000)
    writer = vault.create(disk / "clip.age", [recipient])
    with pytest.raises(vault.DiskFullError) as info:
        for start in range(0, len(data), 50_000):
            for piece in range(start, start + 50_000, 7000):  # a unit in several writes
                writer.write(data[piece : min(piece + 7000, start + 50_000)])
            writer.mark()
        writer.close()
    kept = info.value.kept
    assert kept % 50_000 == 0 and kept >= 1_000_000 - 3 * CHUNK_SIZE - 50_000
    assert "ended early at the last point its writer marked whole" in str(info.value)
    with vault.open_file(disk / "clip.age", [identity]) as reader:
        assert reader.read() == data[:kept]


def test_a_marked_file_with_no_mark_on_the_disk_is_removed(small_disk, owner):
    """Room for the header only: the chunk holding the first mark never reached the disk,
    so there is no file at all (a clip with no whole frame is no clip), though a chunk-cut
    file would not have had one either."""
    _, recipient = owner
    disk = small_disk(512 << 10)
    fill(disk / "filler", leave=os.statvfs(disk).f_frsize)
    writer = vault.create(disk / "clip.age", [recipient])
    with pytest.raises(vault.DiskFullError) as info:
        writer.write(b"x" * 1000)
        writer.mark()  # in RAM: its chunk is sealed, and written, when more data comes
        writer.write(os.urandom(CHUNK_SIZE))
    assert info.value.kept == 0 and sorted(p.name for p in disk.iterdir()) == ["filler"]


@pytest.mark.parametrize("make_room", ["delete", "unkeep"])
def test_with_every_older_clip_kept_the_cut_clip_stays_and_recording_waits_for_room(
    small_disk, caplog, make_room
):
    """4 MB disk, two kept clips on it, a bell clip fills it: the cut clip is kept (it is
    not deleted to make room for the next), exactly one finished clip is announced, and
    recording stops with the fault line and its figures, logged once. The owner deletes a
    kept clip, or unkeeps it (retention then deletes it): recording resumes by itself,
    with a new clip (the trigger still wants one)."""
    import logging

    from doorbell.faults import disk_full_fault
    from doorbell.recorder import RETRY_SECONDS, Recorder
    from doorbell.store import ClipStore, Keyring, Rules
    from doorbell.trigger import Start
    from tests.conftest import PASSPHRASE, find_plaintext

    caplog.set_level(logging.INFO)
    data = small_disk(4 << 20)
    keyring = Keyring.in_data_dir(data)
    keyring.init(PASSPHRASE, work_factor=10)
    identities = keyring.unlock(PASSPHRASE)
    camera = NoiseCamera()
    t0 = 1_800_000_000.0  # the wall clock at camera time 0 (injected: the store's clock too)
    store = ClipStore(
        data,
        keyring.recipients,
        retention=Rules(max_age=30 * 86400, min_free=0),
        clock=lambda: t0 + camera.at,
    )
    kept = []
    for start in (t0 - 2000, t0 - 1000):
        recording = store.new_clip("motion", start=start)
        recording.video.write(os.urandom(1_000_000))
        kept.append(recording.finish(end=start + 10).id)
        store.set_keep(kept[-1], True)

    events: list[tuple[str, object]] = []
    recorder = Recorder(
        store,
        camera.info,
        pre_roll=1.0,
        wall_time=lambda t: t0 + t,
        on_clip=lambda kind, detail: events.append((kind, detail)),
    )
    recorder.add(camera.packets(1.0))
    recorder.apply([Start(at=camera.at, since=camera.at - 1.0, trigger="bell")])
    while recorder.fault is None and camera.at < 60:
        recorder.add(camera.packets(0.5))

    [(started, trigger), (finished, cut)] = events  # one clip, one announcement
    assert (started, trigger, finished) == ("started", "bell", "finished")
    assert cut.state == "complete" and not recorder.recording
    kept_bytes = sum(c.bytes for c in store.list() if c.keep)
    assert recorder.fault == disk_full_fault(kept_bytes, cut.bytes)
    assert recorder.fault.startswith("disk full: kept clips use 2 MB and clips recorded since")
    assert recorder.fault.endswith(
        "; nothing is recorded until there is room (unkeep or delete clips)"
    )
    assert recorder.disk_full

    recorder.add(camera.packets(10.0))  # time passes; the bell still wants its clip
    assert len(events) == 2 and recorder.fault is not None
    assert {c.id for c in store.list()} == {*kept, cut.id}  # the cut clip was not deleted
    mp4 = decrypted(store, cut.id, identities)
    assert strict_frames(mp4) > 30  # it plays to its end: it ends at a whole fragment
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.getMessage() for r in errors] == [disk_full_fault(kept_bytes, cut.bytes)]

    if make_room == "delete":
        store.delete(kept[0])
    else:
        store.set_keep(kept[0], False)  # the next look for room lets retention take it
    resumed_from = camera.at
    while recorder.fault is not None and camera.at < resumed_from + RETRY_SECONDS + 1:
        recorder.add(camera.packets(0.2))
    assert recorder.fault is None and recorder.recording
    assert events[2] == ("started", "bell")
    assert camera.at - resumed_from <= RETRY_SECONDS + 0.5  # looked again within the retry
    resumed = [r for r in caplog.records if "recording resumed" in r.getMessage()]
    assert [r.getMessage() for r in resumed] == ["recording resumed: the disk has room again"]
    recorder.add(camera.packets(1.0))
    after = recorder.stop(camera.at)
    assert after is not None and events[3] == ("finished", after.clip)
    assert {c.id for c in store.list()} == {kept[1], cut.id, after.clip.id}
    assert strict_frames(decrypted(store, after.clip.id, identities)) > 15
    assert find_plaintext(data, mp4) == []
    assert not [p for p in (data / "clips").iterdir() if p.name.endswith(".part")]
    store.close()


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
    assert decrypted(store, old["kept_id"], identities) == old["kept"]  # nothing harmed
    for clip in (first, second):
        mp4 = decrypted(store, clip.id, identities)
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

    from doorbell.faults import out_of_space
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


def recording_beside_an_old_clip(data, keyring, camera, t0, *, min_free, old_size):
    """A store on ``data`` (retention: 30 days, ``min_free`` bytes) holding one finished
    motion clip of ``old_size`` bytes from 1000 s before ``t0``, and a recorder on it with
    a 1 s pre-roll whose finished clips go to ``announced``.
    Returns (store, the old clip's id, recorder, announced)."""
    from doorbell.recorder import Recorder
    from doorbell.store import ClipStore, Rules

    store = ClipStore(
        data,
        keyring.recipients,
        retention=Rules(max_age=30 * 86400, min_free=min_free),
        clock=lambda: t0 + camera.at,
    )
    old = store.new_clip("motion", start=t0 - 1000)
    old.video.write(os.urandom(old_size))
    old_id = old.finish(end=t0 - 990).id
    announced: list = []
    recorder = Recorder(
        store,
        camera.info,
        pre_roll=1.0,
        wall_time=lambda t: t0 + t,
        on_clip=lambda kind, detail: announced.append(detail) if kind == "finished" else None,
    )
    return store, old_id, recorder, announced


def test_a_long_event_never_deletes_its_first_clips_to_make_room_for_its_last(small_disk):
    """4 MB disk, one old unkept clip, then a bell clip that goes on and on: the first cut
    deletes the old clip to go on (something else could go), the second finds only the
    event's own clips: they all stay, and recording stops saying how much they use."""
    from doorbell.faults import disk_full_fault
    from doorbell.store import Keyring
    from doorbell.trigger import Start, Stop
    from tests.conftest import PASSPHRASE

    data = small_disk(4 << 20)
    keyring = Keyring.in_data_dir(data)
    keyring.init(PASSPHRASE, work_factor=10)
    camera = NoiseCamera()
    t0 = 1_800_000_000.0
    store, old_id, recorder, announced = recording_beside_an_old_clip(
        data, keyring, camera, t0, min_free=0, old_size=1_000_000
    )
    recorder.add(camera.packets(1.0))
    recorder.apply([Start(at=camera.at, since=camera.at - 1.0, trigger="bell")])
    while recorder.fault is None and camera.at < 120:
        recorder.add(camera.packets(0.5))

    assert len(announced) == 2  # cut once with something else to delete, once without
    clips = {c.id: c for c in store.list()}
    assert old_id not in clips and set(clips) == {c.id for c in announced}
    assert recorder.fault == disk_full_fault(0, sum(c.bytes for c in announced))
    assert recorder.fault.startswith("disk full: clips recorded since it filled use 4 MB; ")
    recorder.apply(
        [Stop(at=camera.at, reason="quiet")]
    )  # the event ends; its clips stay until room returns
    store.prune()
    assert {c.id for c in store.list()} == set(clips)
    store.close()


def test_a_bell_that_ends_a_motion_clip_never_deletes_it_to_make_room(small_disk):
    """Every older clip is kept and the disk is under min_free. A visitor walks up (a
    motion clip) and rings: the bell's Start ends the motion clip and begins the bell clip.
    The motion clip is the same visit: retention must not delete it to make room for the
    bell clip (a trial saw exactly that). It joins the shortage instead; both clips stay."""
    from doorbell.store import Keyring
    from doorbell.trigger import Start, Stop
    from tests.conftest import PASSPHRASE

    data = small_disk(8 << 20)
    keyring = Keyring.in_data_dir(data)
    keyring.init(PASSPHRASE, work_factor=10)
    camera = NoiseCamera()
    t0 = 1_800_000_000.0
    store, kept_id, recorder, announced = recording_beside_an_old_clip(
        data, keyring, camera, t0, min_free=3 << 20, old_size=2_000_000
    )
    store.set_keep(kept_id, True)
    recorder.add(camera.packets(1.0))
    recorder.apply([Start(at=camera.at, since=camera.at - 1.0, trigger="motion")])
    recorder.add(camera.packets(2.0))
    filler = data / "filler"
    fill(filler, leave=2 << 20)  # now short of min_free (3 MB), with room to record
    recorder.apply([Start(at=camera.at, since=camera.at - 1.0, trigger="bell")])
    recorder.add(camera.packets(1.0))
    recorder.apply([Stop(at=camera.at, reason="quiet")])
    [motion, bell] = announced
    assert (motion.trigger, bell.trigger) == ("motion", "bell")
    assert {c.id for c in store.list()} == {motion.id, bell.id} | {
        c.id for c in store.list() if c.keep
    }
    assert recorder.fault is None  # the bell clip had room: recorded whole
    store.close()
