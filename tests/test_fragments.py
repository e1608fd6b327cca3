"""Where a fragmented MP4 may end: the box scanner and the trim of a recovered clip,
on real MP4 from the project's muxer and on hand-made boxes for the odd cases."""

import io
import struct

import pytest

from doorbell.store.fragments import FragmentScanner, Trimmed, trim


def box(kind: bytes, payload: bytes = b"", large: bool = False) -> bytes:
    if large:
        return struct.pack(">I4sQ", 1, kind, 16 + len(payload)) + payload
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def real_clip(frames: int = 12) -> bytes:
    """A clip as the recorder muxes it."""
    from doorbell.codec import Mp4Writer
    from tests.test_disk_full import noise_packets

    info, packets = noise_packets(frames)
    out = io.BytesIO()
    with Mp4Writer(out, info) as mp4:  # type: ignore[arg-type]
        for packet in packets:
            mp4.write(packet)
    return out.getvalue()


@pytest.fixture(scope="module")
def clip() -> bytes:
    return real_clip()


def boxes(data: bytes) -> list[tuple[bytes, int]]:
    """Each top-level box's type and end, walked by hand (32-bit sizes only)."""
    out, pos = [], 0
    while pos < len(data):
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        pos += size
        out.append((kind, pos))
    return out


def fragment_ends(data: bytes) -> list[int]:
    return [end for kind, end in boxes(data) if kind == b"mdat"]


@pytest.mark.parametrize("piece", [1, 7, 8, 1000, 32768, 1 << 30])
def test_the_scanner_finds_every_fragment_end_whatever_the_pieces(clip, piece):
    data = clip
    names = [kind for kind, _ in boxes(data)]
    assert names[:2] == [b"ftyp", b"moov"] and names[-1] == b"mfra"
    ends = fragment_ends(data)
    assert len(ends) == 12  # one fragment a frame
    scanner = FragmentScanner()
    found = []
    for i in range(0, len(data), piece):
        found += scanner.feed(data[i : i + piece])
    assert found == ends
    assert scanner.fragments == 12 and scanner.is_mp4 and not scanner.broken
    assert scanner.safe_end == len(data)  # the whole mfra after the last fragment counts


def trimmed(data: bytes, piece: int = 65536) -> tuple[bytes, Trimmed]:
    result = Trimmed()
    out = b"".join(trim((data[i : i + piece] for i in range(0, len(data), piece)), result))
    return out, result


def test_a_cut_clip_is_trimmed_to_its_last_whole_fragment(clip):
    data = clip
    ends = fragment_ends(data)
    for cut in [ends[0], ends[3] + 1, ends[5] + 9, ends[7] - 1]:
        out, result = trimmed(data[:cut], piece=4096)
        last = max(e for e in ends if e <= cut)
        assert out == data[:last]
        assert (result.kept, result.dropped) == (last, cut - last)
        assert result.fragments == ends.index(last) + 1 and result.playable


def test_a_clip_cut_before_its_first_whole_fragment_has_nothing_to_play(clip):
    data = clip
    moov_end, first_fragment_end = boxes(data)[1][1], boxes(data)[3][1]
    for cut in [0, 5, 28, moov_end, moov_end + 200, first_fragment_end - 1]:
        out, result = trimmed(data[:cut])
        assert out == b"" and result.kept == 0 and result.dropped == cut
        assert result.fragments == 0 and not result.playable


def test_the_trim_plays_to_its_end_without_an_error(clip):
    """The trimmed clip decodes frame by frame to its last packet with errors raised,
    not skipped (what `ffmpeg -xerror` and Chromium demand)."""
    av = pytest.importorskip("av")
    data = clip
    cut = data[: fragment_ends(data)[6] + 3000]  # 3000 bytes into the 8th frame's media

    def strict_frames(mp4: bytes) -> int:
        frames = 0
        with av.open(io.BytesIO(mp4)) as container:
            for packet in container.demux(video=0):
                frames += len(packet.decode())  # a damaged packet raises here
        return frames

    with pytest.raises(av.error.InvalidDataError):
        strict_frames(cut)
    out, result = trimmed(cut)
    assert result.fragments == 7 and strict_frames(out) == 7


def test_a_stream_that_is_not_mp4_passes_whole():
    data = bytes(range(256)) * 1000
    out, result = trimmed(data)
    assert out == data and result.is_mp4 is False and result.kept == len(data)
    assert result.playable


def test_odd_boxes():
    """A 64-bit size is followed; a box that cannot be (size 3), or one running to the
    end of the file (size 0), stops the scan there, keeping what came before."""
    head = box(b"ftyp", b"isom") + box(b"moov", b"m" * 40)
    frag = box(b"moof", b"f" * 20) + box(b"mdat", b"d" * 100, large=True)
    out, result = trimmed(head + frag + frag, piece=3)
    assert out == head + frag + frag and result.fragments == 2

    bad = head + frag + struct.pack(">I4s", 3, b"moof") + b"x" * 50
    out, result = trimmed(bad, piece=5)
    assert out == head + frag and result.broken == f"no valid box at byte {len(head + frag)}"
    assert result.dropped == 58

    open_ended = head + frag + struct.pack(">I4s", 0, b"mdat") + b"y" * 70
    out, result = trimmed(open_ended)
    assert out == head + frag and "runs to the end of the file" in result.broken

    lone_moof = head + frag + box(b"moof", b"f" * 20)  # a fragment without its media
    out, result = trimmed(lone_moof)
    assert out == head + frag and result.dropped == 28
