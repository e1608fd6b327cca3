"""Repair after a power cut: each clip on its own, cut back to its last whole fragment; what
can never play is removed and said once, by name; the rest is always repaired."""

import logging
import os
import struct

from doorbell import vault
from doorbell.codec import Mp4Writer
from doorbell.store import ClipStore
from tests.test_disk_full import NoiseCamera, strict_frames


def partial_clip(store: ClipStore, camera: NoiseCamera, seconds: float, start: float) -> str:
    """A real clip cut off as a crash leaves it: the muxer's frames so far, the writer's
    sealed chunks on the disk, the rest lost with the process."""
    recording = store.new_clip("bell", start=start)
    mp4 = Mp4Writer(recording.video, camera.info)
    for packet in camera.packets(seconds):
        mp4.write(packet)
    recording.abort()
    mp4.abandon()  # its last frame goes nowhere: the writer is closed
    return recording.id


def box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def flip(path, at: int) -> None:
    """Flip one bit of the file at byte ``at``."""
    data = bytearray(path.read_bytes())
    data[at] ^= 1
    path.write_bytes(bytes(data))


def test_every_clip_is_repaired_on_its_own_and_what_cannot_play_is_removed_once(
    data_dir, identities, caplog
):
    """A power cut left seven clips: two good ones (a real MP4 cut mid-fragment), one empty
    and one cut in its age header (removed at open, without any key), one whose first chunk
    is damaged, one whose header is, one with an MP4 header but no whole frame (removed at
    repair, each by name, and the good ones repaired all the same), and one for another
    owner's key (left as it is, said once)."""
    caplog.set_level(logging.INFO)
    other = vault.X25519Identity.generate()
    not_ours = ClipStore(data_dir, lambda: [other.recipient])
    stranger = not_ours.new_clip("pir", start=3500.0)
    stranger.video.write(os.urandom(200_000))
    stranger.abort()
    not_ours.close()
    store = ClipStore.open(data_dir)
    camera = NoiseCamera()
    good = [partial_clip(store, camera, 2.5, start) for start in (1000.0, 2000.0)]
    empty, header_cut, damaged, bad_header = (
        partial_clip(store, camera, 1.5, start) for start in (3000.0, 3100.0, 3200.0, 3300.0)
    )
    part = {i: store.path(i, ".mp4.age.part") for i in (empty, header_cut, damaged, bad_header)}
    part[empty].write_bytes(b"")
    part[header_cut].write_bytes(part[header_cut].read_bytes()[:60])
    mac_line = part[damaged].read_bytes().index(b"\n--- ") + 1
    flip(part[damaged], mac_line + 48 + 16 + 100)  # past the MAC line and nonce: chunk 0
    raw = part[bad_header].read_bytes()  # a stanza slipped into the header
    part[bad_header].write_bytes(raw.replace(b"v1\n", b"v1\n-> grease x\n\n", 1))
    no_frame = store.new_clip("motion", start=3400.0)
    head = box(b"ftyp", b"isom" * 4) + box(b"moov", os.urandom(700))
    no_frame.video.write(head + struct.pack(">I4s", 200_000, b"moof") + os.urandom(150_000))
    no_frame.abort()
    store.close()

    store = ClipStore.open(data_dir)
    assert sorted(store.report.removed) == sorted(
        [
            f"clip {empty}: the file is empty (a power cut as it began)",
            f"clip {header_cut}: the file ends inside its age header (a power cut as it began)",
        ]
    )
    lines = store.report.lines()
    assert f"clip {empty}: the file is empty (a power cut as it began); removed" in lines
    assert store.report.dropped == []  # said once, as removed, not again as a lost row
    assert not list(data_dir.joinpath("clips").glob(f"{empty}*"))
    assert not list(data_dir.joinpath("clips").glob(f"{header_cut}*"))
    assert {empty, header_cut}.isdisjoint(c.id for c in store.list())

    results = {r.clip_id: r for r in store.repair(identities)}
    assert set(results) == {*good, damaged, bad_header, no_frame.id, stranger.id}
    assert results[damaged].problem == (
        "removed: no chunk of it authenticates (chunk 0 fails authentication: damaged, or cut "
        "short): nothing to recover"
    )
    assert results[bad_header].problem == (
        "removed: its age header is damaged (the header was modified after it was written), "
        "so nothing in it can be decrypted"
    )
    assert results[no_frame.id].problem == (
        "removed: its 131072 intact bytes hold no whole video frame (cut off in its first "
        "moments): nothing to play"
    )
    assert results[stranger.id].problem == (
        "not repaired: the identity given opens none of its 1 recipient stanzas; left for an "
        "identity that does"
    )
    assert all(results[i].removed for i in (damaged, bad_header, no_frame.id))
    assert {c.id: c.state for c in store.list()} == {
        good[0]: "complete",
        good[1]: "complete",
        stranger.id: "partial",
    }
    for clip_id in good:
        assert results[clip_id].problem == "" and results[clip_id].frames >= 25
        with store.open_video(clip_id, identities) as reader:
            mp4 = reader.read()
        assert len(mp4) == results[clip_id].kept
        assert strict_frames(mp4) == results[clip_id].frames  # plays to its end, no error
        assert sorted(p.name for p in data_dir.joinpath("clips").glob(f"{clip_id}*")) == [
            f"{clip_id}.mp4.age"
        ]

    assert [r.clip_id for r in store.repair(identities)] == [stranger.id]  # tried again
    said = [r.getMessage() for r in caplog.records if stranger.id in r.getMessage()]
    assert len(said) == 1  # but said once
    store.close()
