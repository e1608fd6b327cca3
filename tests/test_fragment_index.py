"""A finished clip's fragment index (``<id>.idx.age``): each keyframe's time and the offset
of the moof that starts with it, checked against PyAV decoding the clip's plaintext, and
that the browser's way of seeking (the init segment, then the fragments from a listed
offset) plays from exactly that keyframe."""

import io
import json
import struct

import numpy as np
import pytest

from doorbell import vault
from doorbell.codec import H264Encoder, Mp4Writer
from doorbell.recorder import Recorder
from doorbell.store import INDEX, ClipStore, Keyring
from doorbell.store.fragment_index import KEPT_BOXES, FragmentIndex, decode
from doorbell.store.fragments import FragmentScanner
from doorbell.trigger import Start
from tests.test_disk_full import NoiseCamera, strict_frames
from tests.test_store import decrypted


def top_boxes(data: bytes) -> list[tuple[bytes, int, int]]:
    """Each top-level box: type, start, end (walked by hand, 32-bit sizes)."""
    out, pos = [], 0
    while pos < len(data):
        size, kind = struct.unpack_from(">I4s", data, pos)
        out.append((kind, pos, pos + size))
        pos += size
    return out


def keyframes_by_pyav(mp4: bytes) -> list[float]:
    """The presentation time (s) of every keyframe packet, as PyAV demuxes the file."""
    import av

    found = []
    with av.open(io.BytesIO(mp4)) as container:
        for packet in container.demux(video=0):
            if packet.size and packet.is_keyframe:
                found.append(float(packet.pts * packet.time_base))
    return found


def first_frame(mp4: bytes) -> tuple[float, bool]:
    """The first decoded frame of an MP4: its time (s) and whether it is a keyframe."""
    import av

    with av.open(io.BytesIO(mp4)) as container:
        frame = next(container.decode(video=0))
        return float(frame.pts * frame.time_base), frame.key_frame


def check_index(index: dict, mp4: bytes) -> None:
    """The index says what PyAV sees in ``mp4``, and seeking as the browser does works."""
    boxes = top_boxes(mp4)
    assert [k for k, _, _ in boxes[:2]] == [b"ftyp", b"moov"]
    assert index["version"] == 1 and index["size"] == len(mp4) and index["init"] == boxes[1][2]
    times = [t for t, _ in index["keyframes"]]
    assert times == [round(t, 3) for t in keyframes_by_pyav(mp4)]
    moofs = {start for kind, start, _ in boxes if kind == b"moof"}
    init = mp4[: index["init"]]
    for t, offset in index["keyframes"]:
        assert offset in moofs  # a moof starts there
        seek = init + mp4[offset:]  # what the player appends to play from t
        at, key = first_frame(seek)
        assert key and round(at, 3) == t
    last_offset = index["keyframes"][-1][1]
    frames_after = sum(1 for kind, start, _ in boxes if kind == b"moof" and start >= last_offset)
    assert strict_frames(init + mp4[last_offset:]) == frames_after  # decodes to its end


def test_the_recorder_writes_the_index_pyav_agrees_and_each_offset_plays_from_its_keyframe(
    data_dir, identities
):
    """A real recorder, a keyframe a second: the clip's index, decrypted with the owner's
    identity, lists every keyframe PyAV finds, at its time, and the moof offset from which
    the init segment plus the rest of the file plays, starting with that keyframe."""
    camera = NoiseCamera()
    store = ClipStore.open(data_dir)
    recorder = Recorder(store, camera.info, pre_roll=1.0, wall_time=lambda t: 1.8e9 + t)
    recorder.add(camera.packets(1.5))
    recorder.apply([Start(at=camera.at, since=camera.at - 1.0, trigger="bell")])
    recorder.add(camera.packets(5.0))
    done = recorder.stop(camera.at)
    assert done is not None
    index = decode(decrypted(store, done.clip.id, identities, INDEX))
    mp4 = decrypted(store, done.clip.id, identities)
    check_index(index, mp4)
    # from the keyframe before the pre-roll (camera time 0) to the end (6.5 s)
    assert [t for t, _ in index["keyframes"]] == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    store.close()


def test_times_are_exact_at_an_irregular_rate_and_an_odd_keyframe_interval(data_dir, identities):
    """Frames at a jittery 12.5 fps, a keyframe every 7 frames: the index's times are
    the file's own, to the millisecond, as PyAV reads them."""
    encoder = H264Encoder(160, 120, 12.5, keyframe_interval=0.56)
    rng = np.random.default_rng(3)
    store = ClipStore.open(data_dir)
    recording = store.new_clip("motion", start=1000.0)
    mp4 = Mp4Writer(recording.video, encoder.stream_info())
    for n in range(40):
        at = 3.0 + n * 0.08 + float(rng.uniform(0, 0.03))
        picture = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
        for packet in encoder.encode(picture, at):
            mp4.write(packet)
    for packet in encoder.flush():
        mp4.write(packet)
    mp4.close()
    clip = recording.finish(end=1003.2)
    index = decode(decrypted(store, clip.id, identities, INDEX))
    check_index(index, decrypted(store, clip.id, identities))
    assert len(index["keyframes"]) == 6 and index["keyframes"][0][0] == 0.0
    assert any(t != round(t, 1) for t, _ in index["keyframes"])  # not whole tenths: real times
    store.close()


def test_the_index_is_encrypted_to_every_recipient_of_the_clip(data_dir, identities):
    partner = vault.X25519Identity.generate()
    Keyring.in_data_dir(data_dir).add_recipient(partner.recipient, "partner")
    store = ClipStore.open(data_dir)
    camera = NoiseCamera()
    recording = store.new_clip("bell", start=1000.0)
    mp4 = Mp4Writer(recording.video, camera.info)
    for packet in camera.packets(1.5):
        mp4.write(packet)
    mp4.close()
    clip = recording.finish(end=1001.5)
    mine, theirs = (
        decode(decrypted(store, clip.id, who, INDEX)) for who in (identities, [partner])
    )
    assert mine == theirs and mine["keyframes"][0] == [0.0, mine["init"]]
    store.close()


def clip_bytes(seconds: float = 3.0) -> bytes:
    camera = NoiseCamera()
    out = io.BytesIO()
    with Mp4Writer(out, camera.info) as mp4:  # type: ignore[arg-type]
        for packet in camera.packets(seconds):
            mp4.write(packet)
    return out.getvalue()


def index_of(data: bytes, piece: int) -> FragmentIndex:
    scanner, index = FragmentScanner(keep=KEPT_BOXES), FragmentIndex()
    for i in range(0, len(data), piece):
        scanner.feed(data[i : i + piece])
        for box in scanner.take_boxes():
            index.add(*box)
    return index


@pytest.mark.parametrize("piece", [1, 7, 8, 4096, 1 << 30])
def test_the_same_index_whatever_the_pieces_the_muxer_writes(piece):
    data = clip_bytes()
    whole = json.loads(index_of(data, 1 << 30).encode(len(data)) or b"null")
    assert json.loads(index_of(data, piece).encode(len(data)) or b"null") == whole
    assert len(whole["keyframes"]) == 3


def test_a_file_a_full_disk_ended_early_lists_only_what_it_holds():
    data = clip_bytes()
    index = index_of(data, 65536)
    second = index.keyframes[1][1]
    assert json.loads(index.encode(second) or b"")["keyframes"] == [list(index.keyframes[0])]
    assert json.loads(index.encode(second + 1) or b"")["keyframes"] == [
        list(k) for k in index.keyframes[:2]
    ]
    assert index.encode(index.init - 1) is None  # cut inside the moov: nothing to seek in


def test_no_index_for_what_is_not_an_mp4():
    index = index_of(bytes(range(256)) * 1000, 4096)
    assert index.encode(256_000) is None and not index.problem


# -- hand-made boxes: the fields a muxer other than ours may use ----------------------------


def box(kind: bytes, payload: bytes = b"") -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def full(kind: bytes, version: int, flags: int, payload: bytes) -> bytes:
    return box(kind, struct.pack(">I", version << 24 | flags) + payload)


def moov(track_id: int = 7, timescale: int = 1000, trex_flags: int = 0, v1: bool = False):
    if v1:
        tkhd = full(b"tkhd", 1, 3, struct.pack(">QQI", 0, 0, track_id) + bytes(60))
        mdhd = full(b"mdhd", 1, 0, struct.pack(">QQIQ", 0, 0, timescale, 0) + bytes(4))
    else:
        tkhd = full(b"tkhd", 0, 3, struct.pack(">III", 0, 0, track_id) + bytes(68))
        mdhd = full(b"mdhd", 0, 0, struct.pack(">IIII", 0, 0, timescale, 0) + bytes(4))
    trak = box(b"trak", tkhd + box(b"mdia", mdhd))
    trex = full(b"trex", 0, 0, struct.pack(">5I", track_id, 1, 0, 0, trex_flags))
    return box(b"moov", trak + box(b"mvex", trex))


NON_SYNC = 0x0101_0000  # depends on others, non-sync
SYNC = 0x0200_0000


def moof(
    decode_time: int,
    *,
    track_id: int = 7,
    tfhd_flags: int | None = None,
    first: int | None = None,
    per_sample: int | None = None,
    offset: int | None = None,
    v1: bool = False,
) -> bytes:
    tf = 0x20000 | (0x20 if tfhd_flags is not None else 0)
    tfhd = full(
        b"tfhd",
        0,
        tf,
        struct.pack(">I", track_id)
        + (struct.pack(">I", tfhd_flags) if tfhd_flags is not None else b""),
    )
    tfdt = (
        full(b"tfdt", 1, 0, struct.pack(">Q", decode_time))
        if v1
        else full(b"tfdt", 0, 0, struct.pack(">I", decode_time))
    )
    flags, fields = 0x1, struct.pack(">i", 0)
    if first is not None:
        flags |= 0x4
        fields += struct.pack(">I", first)
    sample = b""
    if per_sample is not None:
        flags |= 0x400
        sample += struct.pack(">I", per_sample)
    if offset is not None:
        flags |= 0x800
        sample += struct.pack(">i", offset)
    trun = full(b"trun", 1 if v1 else 0, flags, struct.pack(">I", 1) + fields + sample)
    return box(
        b"moof", full(b"mfhd", 0, 0, struct.pack(">I", 1)) + box(b"traf", tfhd + tfdt + trun)
    )


def hand_index(*fragments: bytes, head: bytes | None = None) -> dict:
    data = box(b"ftyp", b"isom") + (head if head is not None else moov())
    for fragment in fragments:
        data += fragment + box(b"mdat", b"x" * 10)
    return json.loads(index_of(data, 5).encode(len(data)) or b"null")


def test_sync_samples_from_each_place_the_flags_may_be():
    """Flags from the trun's first-sample field, its per-sample field, the tfhd's default,
    else the trex's; a composition offset is added; version-1 tfdt and mdhd/tkhd read."""
    found = hand_index(
        moof(0, first=SYNC),
        moof(500, first=NON_SYNC),
        moof(1000, per_sample=SYNC),
        moof(1500, per_sample=NON_SYNC),
        moof(2000, tfhd_flags=SYNC),
        moof(2500, tfhd_flags=NON_SYNC),
        moof(3000, offset=250, first=SYNC),
        moof(2**33, v1=True, first=SYNC),
        moof(4000, track_id=9, first=SYNC),  # another track: not the video's
    )
    times = [t for t, _ in found["keyframes"]]
    assert times == [0.0, 1.0, 2.0, 3.25, 2**33 / 1000]
    assert hand_index(moof(7000), head=moov(trex_flags=SYNC, v1=True))["keyframes"][0][0] == 7.0
    assert hand_index(moof(7000), head=moov(trex_flags=NON_SYNC))["keyframes"] == []


def test_a_malformed_moof_stops_the_index_there_and_says_so():
    good = moof(0, first=SYNC)
    bad = box(b"moof", box(b"traf", struct.pack(">I4s", 400, b"tfhd")))
    data = box(b"ftyp", b"isom") + moov() + good + box(b"mdat") + bad + box(b"mdat")
    data += moof(1000, first=SYNC) + box(b"mdat")
    index = index_of(data, 64)
    assert [t for t, _ in index.keyframes] == [0.0]
    assert index.problem.startswith("the moof box at byte ") and "runs past" in index.problem
