"""The recorder forgets each clip's keys when the clip ends: the vault writer drops its
cipher and zeroes its payload key (the file key was zeroed as soon as the header was
made), and a recording process's memory, read whole from /proc/PID/mem, holds no copy of
any finished clip's file key or payload key, while the same scan does find the key of
the clip still being recorded (so a scan that reads nothing cannot pass)."""

import gc
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from doorbell import vault
from doorbell.store import ClipStore
from doorbell.vault import writer as writer_module
from doorbell.vault.header import parse_header
from doorbell.vault.stream import CHUNK_SIZE, payload_key
from tests.test_disk_full import fill


def keys_of(path: Path, identities) -> tuple[bytes, bytes]:
    """The file key and payload key of an age file, found as its owner finds them."""
    with open(path, "rb") as file:
        header = parse_header(file.readline)
        nonce = file.read(16)
    for identity in identities:
        file_key = identity.unwrap(header.stanzas)
        if file_key is not None:
            return file_key, payload_key(file_key, nonce)
    raise AssertionError(f"{path}: not for these identities")


@pytest.fixture
def made_keys(monkeypatch):
    """Every file key the vault writer makes, as the bytearray it holds."""
    made: list[bytearray] = []
    random_key = writer_module._random_key

    def keeping(size: int) -> bytearray:
        made.append(random_key(size))
        return made[-1]

    monkeypatch.setattr(writer_module, "_random_key", keeping)
    return made


def forgot(writer: vault.Writer, payload: bytearray, file_key: bytearray) -> bool:
    """The writer holds no key, cipher or plaintext, and both keys' buffers are zeros."""
    held = (writer._key, writer._cipher, writer._last, writer._safe_mark, writer._pending_mark)
    return (
        all(x is None for x in held)
        and not writer._buffer
        and payload == bytearray(32)
        and file_key == bytearray(16)
    )


@pytest.mark.parametrize("end", ["close", "abort", "discard"])
def test_the_writer_forgets_its_keys_however_the_file_ends(tmp_path, made_keys, end):
    owner = vault.X25519Identity.generate()
    writer = vault.create(tmp_path / "clip.age", [owner.recipient])
    [file_key] = made_keys
    assert file_key == bytearray(16)  # zeroed once the header and payload key were made
    payload = writer._key
    assert payload is not None and payload != bytearray(32)
    writer.write(os.urandom(CHUNK_SIZE + 5000))
    writer.mark()
    getattr(writer, end)()
    assert forgot(writer, payload, file_key)
    with pytest.raises(ValueError, match="closed"):
        writer.write(b"more")


def test_the_writer_forgets_its_keys_when_a_full_disk_ends_the_file(small_disk, made_keys):
    owner = vault.X25519Identity.generate()
    disk = small_disk(1 << 20)
    fill(disk / "filler", leave=4 * CHUNK_SIZE)
    writer = vault.create(disk / "clip.age", [owner.recipient])
    payload = writer._key
    assert payload is not None
    with pytest.raises(vault.DiskFullError):
        for _ in range(8):
            writer.write(os.urandom(CHUNK_SIZE))
            writer.mark()
    assert forgot(writer, payload, made_keys[0])


def test_a_stored_clip_leaves_no_reference_to_its_keys(data_dir, identities, made_keys):
    """Python-level: after a clip is finished and the garbage collected, no object the
    collector knows refers to a bytes or bytearray equal to one of its keys."""
    store = ClipStore.open(data_dir)
    recording = store.new_clip("bell", start=1000.0)
    recording.write_thumbnail(os.urandom(3000))
    recording.video.write(os.urandom(200_000))
    clip = recording.finish(end=1010.0)
    del recording
    gc.collect()
    keys = {
        bytes(k)
        for suffix in (".mp4.age", ".jpg.age")
        for k in keys_of(store.path(clip.id, suffix), identities)
    }
    mine = {id(k) for k in keys}
    found = [
        type(obj).__name__
        for obj in gc.get_objects()
        for ref in gc.get_referents(obj)
        if isinstance(ref, bytes | bytearray) and id(ref) not in mine and bytes(ref) in keys
    ]
    assert found == []
    assert all(k == bytearray(len(k)) for k in made_keys)  # every file key zeroed
    store.close()


# A recorder in a child process: three clips recorded and finished, a fourth being
# recorded when it says its id; told to go on, it finishes that one too and says "done".
RECORDER = textwrap.dedent(
    """
    import gc, os, sys
    from doorbell.recorder import Recorder
    from doorbell.store import ClipStore
    from doorbell.trigger import Start
    from tests.test_disk_full import NoiseCamera

    store = ClipStore.open(sys.argv[1])
    camera = NoiseCamera()
    recorder = Recorder(
        store, camera.info, pre_roll=1.0, wall_time=lambda t: 1.8e9 + t,
        thumbnail=lambda: os.urandom(5000),
    )
    recorder.add(camera.packets(1.0))
    for n in range(4):
        recorder.apply([Start(at=camera.at, since=camera.at - 1.0, trigger="bell")])
        recorder.add(camera.packets(2.0))
        if n < 3:
            recorder.stop(camera.at)
            recorder.add(camera.packets(0.5))
    print(recorder._open.recording.id, flush=True)
    sys.stdin.readline()
    recorder.stop(camera.at)
    gc.collect()
    print("done", flush=True)
    sys.stdin.readline()
    """
)


def readable_memory(pid: int):
    """(region name, bytes) of every readable mapping of process ``pid``."""
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", 0) as mem:
        for line in maps:
            fields = line.split()
            low, high = (int(x, 16) for x in fields[0].split("-"))
            if "r" not in fields[1] or (len(fields) > 5 and fields[5] == "[vvar]"):
                continue
            try:
                mem.seek(low)
                data = mem.read(high - low)
            except OSError:  # a guard page or a device mapping: nothing to read there
                continue
            yield (fields[5] if len(fields) > 5 else "[anonymous]"), data


def scan(pid: int, secrets: dict[str, bytes]) -> dict[str, list[str]]:
    """Where in process ``pid``'s memory each secret is: name -> regions, one a copy."""
    hits: dict[str, list[str]] = {name: [] for name in secrets}
    try:
        for region, data in readable_memory(pid):
            for name, key in secrets.items():
                at = data.find(key)
                while at >= 0:
                    hits[name].append(region)
                    at = data.find(key, at + 1)
    except PermissionError as err:
        pytest.skip(f"cannot read the child's memory here (ptrace rules): {err}")
    return hits


def secrets_of(paths, identities) -> dict[str, bytes]:
    found = {}
    for path in paths:
        file_key, payload = keys_of(path, identities)
        found[f"{path.name} file key"] = file_key
        found[f"{path.name} payload key"] = payload
    return found


def test_a_recording_process_forgets_every_clips_keys(data_dir, identities):
    """A real recorder in a child process. While its fourth clip is recorded, a scan of
    its whole readable memory finds that clip's payload key (so a scan that reads nothing
    cannot pass). Once that clip is finished too and the garbage collected, the scan finds
    none of the 24 keys of the twelve age files (four clips' videos, thumbnails and
    fragment indexes; each file's file key and payload key)."""
    root = Path(__file__).resolve().parents[1]
    child = subprocess.Popen(
        [sys.executable, "-c", RECORDER, str(data_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=root,
    )
    folder = data_dir / "clips"
    try:
        open_id = child.stdout.readline().strip()  # type: ignore[union-attr]
        assert len(open_id) == 16, "the recorder did not start"
        open_video = secrets_of([folder / f"{open_id}.mp4.age.part"], identities)
        during = scan(child.pid, open_video)
        child.stdin.write("go on\n")  # type: ignore[union-attr]
        child.stdin.flush()  # type: ignore[union-attr]
        assert child.stdout.readline().strip() == "done"  # type: ignore[union-attr]
        finished = sorted(p for p in folder.iterdir() if p.name.endswith(".age"))
        assert len(finished) == 12
        after = scan(child.pid, secrets_of(finished, identities))
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert len(during[f"{open_id}.mp4.age.part payload key"]) >= 1
    assert {name: where for name, where in after.items() if where} == {}
