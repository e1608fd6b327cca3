"""No repair by decryption: a clip a crash cut off is kept as it is at the next start (its
video renamed into place, nothing read past its age header, nothing rewritten, no identity
needed), shown as cut short; the owner gets its whole fragments back with
`doorbell decrypt --recover`. Only what can never play (empty, cut in its header) is
removed, and said once, by name."""

import hashlib
import json
import os
import signal
import struct
import subprocess
import sys
import textwrap

from doorbell import vault
from doorbell.cli import main
from doorbell.codec import Mp4Writer
from doorbell.store import ClipStore
from doorbell.store.fragments import FragmentScanner
from doorbell.vault.stream import CHUNK_SIZE, SEALED_CHUNK_SIZE
from tests.test_disk_full import NoiseCamera, strict_frames

# A recorder in a child process, killed mid-clip. What the muxer hands the clip's video
# (the plaintext) is teed to a file for the test to compare with, which a device never does.
RECORDER = textwrap.dedent(
    """
    import sys
    from doorbell.recorder import Recorder
    from doorbell.store import ClipStore
    from doorbell.store.recording import ClipVideo
    from doorbell.trigger import Start
    from tests.test_disk_full import NoiseCamera

    tee = open(sys.argv[2], "wb", buffering=0)
    write = ClipVideo.write
    def teed(self, data):
        tee.write(bytes(data))
        return write(self, data)
    ClipVideo.write = teed

    store = ClipStore.open(sys.argv[1], fsync_interval=0.0)
    camera = NoiseCamera()
    recorder = Recorder(store, camera.info, pre_roll=1.0, wall_time=lambda t: 1.8e9 + t)
    recorder.add(camera.packets(1.0))
    recorder.apply([Start(at=camera.at, since=camera.at - 1.0, trigger="bell")])
    recorder.add(camera.packets(float(sys.argv[3])))
    print(recorder._open.recording.id, flush=True)
    sys.stdin.read()  # killed here, mid-clip
    """
)


def killed_mid_clip(data_dir, tmp_path, seconds: float) -> tuple[str, bytes]:
    """Record ``seconds`` of a clip in a child process and SIGKILL it: the clip's id and
    the plaintext its muxer produced (more than reached the disk)."""
    tee = tmp_path / "muxed.mp4"
    child = subprocess.Popen(
        [sys.executable, "-c", RECORDER, str(data_dir), str(tee), str(seconds)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )
    try:
        clip_id = child.stdout.readline().strip()  # type: ignore[union-attr]
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert child.returncode == -signal.SIGKILL and len(clip_id) == 16
    return clip_id, tee.read_bytes()


def digest(path) -> tuple[int, str]:
    return path.stat().st_ino, hashlib.sha256(path.read_bytes()).hexdigest()


def identity_file(tmp_path, identities) -> str:
    path = tmp_path / "identity.txt"
    path.write_text(identities[0].secret() + "\n")
    return str(path)


def test_a_killed_recorders_clip_is_kept_as_it_is_with_no_identity_and_recover_plays_it(
    data_dir, identities, tmp_path, capsys
):
    """SIGKILL mid-clip. The next start, with no identity on the device, keeps the clip's
    ``.part`` as it is: the same inode and bytes renamed to ``<id>.mp4.age``, marked cut,
    "partial" with its end the file's time, no fragment index. `decrypt --recover` with
    the owner's identity then gives exactly the muxer's output up to its last whole
    fragment in the whole chunks on the disk, which plays to its end."""
    clip_id, muxed = killed_mid_clip(data_dir, tmp_path, 4.0)
    (data_dir / "keys" / "identity.age").unlink()  # nothing on the device can decrypt
    part = data_dir / "clips" / f"{clip_id}.mp4.age.part"
    before = digest(part)
    payload = part.read_bytes().index(b"\n--- ") + 1 + 48 + 16  # after the MAC line, nonce
    whole_chunks = (part.stat().st_size - payload) // SEALED_CHUNK_SIZE
    assert whole_chunks >= 3  # ~4.5 s of ~15 kB frames: about 1 MB muxed

    store = ClipStore.open(data_dir)
    assert store.report.partial == [clip_id] and store.report.removed == []
    assert any("kept as they are, cut short" in line for line in store.report.lines())
    video = store.path(clip_id, ".mp4.age")
    assert digest(video) == before and not part.exists()  # renamed, not rewritten
    clip = store.get(clip_id)
    assert (clip.state, clip.trigger, clip.end) == ("partial", "bell", video.stat().st_mtime)
    names = sorted(p.name for p in (data_dir / "clips").iterdir())
    assert names == [f"{clip_id}.cut", f"{clip_id}.mp4.age"]  # no fragment index
    store.close()

    scanner = FragmentScanner()
    ends = [end for end in scanner.feed(muxed) if end <= whole_chunks * CHUNK_SIZE]
    out = tmp_path / "out.mp4"
    argv = ["decrypt", "--recover", "-i", identity_file(tmp_path, identities), "-o", str(out)]
    assert main([*argv, str(video)]) == 0
    assert out.read_bytes() == muxed[: ends[-1]]
    assert strict_frames(out.read_bytes()) == len(ends)  # every whole fragment, to its end
    said = capsys.readouterr().err
    assert f"recovered {whole_chunks * CHUNK_SIZE} bytes ({whole_chunks} chunks)" in said
    cut_back = whole_chunks * CHUNK_SIZE - ends[-1]
    assert f"cut back {cut_back} bytes to its last whole fragment ({len(ends)} kept)" in said


def partial_clip(store: ClipStore, camera: NoiseCamera, seconds: float, start: float) -> str:
    """A real clip cut off as a crash leaves it: the muxer's frames so far, the writer's
    sealed chunks on the disk (its ``.part``), the rest lost with the process."""
    recording = store.new_clip("bell", start=start)
    mp4 = Mp4Writer(recording.video, camera.info)
    for packet in camera.packets(seconds):
        mp4.write(packet)
    recording.video.writer._sink.abort()  # type: ignore[attr-defined]  # as SIGKILL leaves it
    mp4.abandon()  # an output container left to the garbage collector crashes av 14.1
    return recording.id


def box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def test_only_what_can_never_play_is_removed_at_open_the_rest_is_kept_unread(
    data_dir, identities, tmp_path, capsys
):
    """A power cut left six clips. Removed at open, each said once by name: an empty one
    and one cut in its age header. Kept as they are, unread, whatever is inside (the device
    cannot look): a good one, one whose first chunk is damaged, one whose header is, one
    for another owner's key. A half-written thumbnail and fragment index go; what an
    earlier version's cut-off repair left goes. The owner's `decrypt --recover` tells the
    kept ones apart."""
    store = ClipStore.open(data_dir)
    stranger = "5" * 16  # a clip for another owner's key, its row lost too
    not_ours = vault.create(
        store.path(stranger, ".mp4.age"), [vault.X25519Identity.generate().recipient]
    )
    not_ours.write(os.urandom(200_000))
    not_ours._sink.abort()  # type: ignore[attr-defined]  # as a crash leaves it
    camera = NoiseCamera()
    good, empty, header_cut, damaged, bad_header = (
        partial_clip(store, camera, 1.5, start)
        for start in (1000.0, 3000.0, 3100.0, 3200.0, 3300.0)
    )
    part = {i: store.path(i, ".mp4.age.part") for i in (empty, header_cut, damaged, bad_header)}
    part[empty].write_bytes(b"")
    part[header_cut].write_bytes(part[header_cut].read_bytes()[:60])
    mac_line = part[damaged].read_bytes().index(b"\n--- ") + 1
    data = bytearray(part[damaged].read_bytes())
    data[mac_line + 48 + 16 + 100] ^= 1  # past the MAC line and nonce: chunk 0
    part[damaged].write_bytes(bytes(data))
    raw = part[bad_header].read_bytes()  # a stanza slipped into the header
    part[bad_header].write_bytes(raw.replace(b"v1\n", b"v1\n-> grease x\n\n", 1))
    store.path(good, ".jpg.age.part").write_bytes(b"age-encryption.org/v1\n-> X25519 cut")
    store.path(good, ".idx.age.part").write_bytes(b"age-encryption.org/v1\n")
    leftover = store.folder / f"{damaged}.mp4.age.repair.part"
    leftover.write_bytes(b"an earlier version's repair, cut off")
    kept = (good, damaged, bad_header, stranger)
    before = {i: digest(store.path(i, ".mp4.age.part")) for i in kept}
    store.close()

    (data_dir / "keys" / "identity.age").unlink()  # nothing on the device can decrypt
    store = ClipStore.open(data_dir)
    assert sorted(store.report.removed) == sorted(
        [
            f"clip {empty}: the file is empty (a power cut as it began)",
            f"clip {header_cut}: the file ends inside its age header (a power cut as it began)",
            f"the thumbnail of clip {good}: cut off while written",
        ]
    )
    lines = store.report.lines()
    assert f"clip {empty}: the file is empty (a power cut as it began); removed" in lines
    assert store.report.dropped == []  # said once, as removed, not again as a lost row
    assert sorted(store.report.partial) == sorted(kept)
    assert {c.id: c.state for c in store.list()} == dict.fromkeys(kept, "partial")
    for clip_id in kept:
        assert digest(store.path(clip_id, ".mp4.age")) == before[clip_id]
    names = sorted(p.name for p in store.folder.iterdir())
    assert names == sorted(f"{i}{s}" for i in kept for s in (".cut", ".mp4.age"))
    store.close()

    identity = identity_file(tmp_path, identities)
    for clip_id, said in (
        (good, "the video is cut back"),
        (damaged, "recovered 0 bytes (0 chunks)"),
        (bad_header, "header MAC failure"),
        (stranger, "no match"),
    ):
        video = str(data_dir / "clips" / f"{clip_id}.mp4.age")
        out = str(tmp_path / f"{clip_id}.mp4")
        main(["decrypt", "--recover", "-i", identity, "-o", out, video])
        assert said in capsys.readouterr().err, clip_id
    assert strict_frames((tmp_path / f"{good}.mp4").read_bytes()) >= 10


def test_a_clip_aborted_while_running_is_kept_at_once(data_dir, identities):
    """A failing card stops a clip (``ClipRecording.abort``): its video is kept as a crash
    would leave it at once, renamed and marked, "partial" with its end: nothing waits for
    a restart or an unlock. A clip stopped before a whole chunk reached the disk can never
    play and is removed, row and all."""
    store = ClipStore.open(data_dir)
    camera = NoiseCamera()
    recording = store.new_clip("motion", start=1000.0)
    mp4 = Mp4Writer(recording.video, camera.info)
    for packet in camera.packets(2.0):
        mp4.write(packet)
    clip = recording.abort()
    mp4.abandon()
    assert clip is not None and clip.state == "partial"
    video = store.path(clip.id, ".mp4.age")
    assert store.get(clip.id).end == clip.end == video.stat().st_mtime
    assert sorted(p.name for p in store.folder.iterdir()) == [
        f"{clip.id}.cut",
        f"{clip.id}.mp4.age",
    ]
    with open(video, "rb") as file:
        recovered = vault.Recovery()
        assert b"".join(vault.recover(file, identities, recovered))[:8] == b"\0\0\0\x1cftyp"
    assert recovered.chunks >= 1 and not recovered.complete

    early = store.new_clip("bell", start=2000.0)
    early.video.write(b"x" * 1000)  # in the writer's unsealed chunk: nothing on the disk
    assert early.abort() is None
    assert sorted(p.name for p in store.folder.iterdir()) == [
        f"{clip.id}.cut",
        f"{clip.id}.mp4.age",
    ]
    assert [c.id for c in store.list()] == [clip.id]
    store.close()
    store = ClipStore.open(data_dir)  # the next start finds nothing to do
    assert store.report.lines() == [] and store.get(clip.id).state == "partial"
    store.close()


def test_the_fragment_index_of_a_finished_clip_is_written_and_deleted_with_it(data_dir, identities):
    """A finished MP4 clip gets ``<id>.idx.age``, encrypted to the clip's recipients,
    counted in its bytes, removed with it; a cut one has none."""
    store = ClipStore.open(data_dir)
    camera = NoiseCamera()
    recording = store.new_clip("bell", start=1000.0)
    mp4 = Mp4Writer(recording.video, camera.info)
    for packet in camera.packets(2.5):
        mp4.write(packet)
    mp4.close()
    clip = recording.finish(end=1002.5)
    index = store.path(clip.id, ".idx.age")
    with vault.open_file(index, identities) as reader:
        found = json.loads(reader.read())
    with vault.open_file(store.path(clip.id, ".mp4.age"), identities) as reader:
        assert found["size"] == reader.size
    assert [t for t, _ in found["keyframes"]] == [0.0, 1.0, 2.0]
    assert clip.bytes == sum(p.stat().st_size for p in store.folder.iterdir())
    store.delete(clip.id)
    assert list(store.folder.iterdir()) == []
    store.close()
