"""A clip's fragment index: where each keyframe's fragment starts, for seeking in the browser.

    index = FragmentIndex()
    for offset, kind, box in scanner.take_boxes():   # FragmentScanner(keep=KEPT_BOXES)
        index.add(offset, kind, box)
    data = index.encode(size)        # UTF-8 JSON, or None if the stream held no moov

The JSON (``<id>.idx.age`` holds it, encrypted to the clip's recipients)::

    {"version": 1, "size": <plaintext bytes of the MP4>, "init": <bytes of ftyp+moov>,
     "keyframes": [[<seconds, 3 decimals>, <byte offset of that moof>], ...]}

A seek to ``t`` starts at the last keyframe at or before ``t``: the browser
fetches and decrypts the 64 KiB chunks from the one holding its offset. The
times and keyframes come from the ``moof`` boxes themselves (``tfdt`` over the
track's ``mdhd`` timescale, plus the first sample's composition offset; a
sync sample is one without ``sample_is_non_sync_sample`` in its flags, taken
from ``trun``, else ``tfhd``, else the ``moov``'s ``trex``), so the index says
what any player of the file sees, whatever muxed it. Pure: no I/O.
"""

import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

VERSION = 1
KEPT_BOXES = (b"moov", b"moof")  # what the FragmentScanner must keep for the index
NON_SYNC = 0x0001_0000  # sample_is_non_sync_sample, in ISO/IEC 14496-12 sample flags


class BoxError(ValueError):
    """A box too short for the fields its header promises."""


def children(payload: bytes) -> Iterator[tuple[bytes, bytes]]:
    """The boxes inside ``payload`` (a container's payload): (type, payload) each.
    Raises BoxError for a size that runs past the end or is too small."""
    pos = 0
    while pos + 8 <= len(payload):
        size, kind = struct.unpack_from(">I4s", payload, pos)
        head = 8
        if size == 1:
            if pos + 16 > len(payload):
                raise BoxError(f"the {kind!r} box at {pos} has no 64-bit size")
            (size,) = struct.unpack_from(">Q", payload, pos + 8)
            head = 16
        elif size == 0:
            size = len(payload) - pos
        if size < head or pos + size > len(payload):
            raise BoxError(f"the {kind!r} box at {pos} runs past its container")
        yield kind, payload[pos + head : pos + size]
        pos += size


def child(payload: bytes, kind: bytes) -> bytes | None:
    """The payload of the first box of type ``kind`` in ``payload``, or None."""
    return next((body for found, body in children(payload) if found == kind), None)


def _full_box(body: bytes, need: int) -> tuple[int, int]:
    """A full box's version and flags; BoxError if it has fewer than ``need`` bytes."""
    if len(body) < need:
        raise BoxError("a box is shorter than its fields")
    word = int.from_bytes(body[:4], "big")
    return word >> 24, word & 0xFF_FFFF


@dataclass(frozen=True)
class Track:
    """What a fragment needs from the ``moov`` about its track."""

    timescale: int  # ticks a second (mdhd)
    default_flags: int = 0  # sample flags when a fragment gives none (trex)


def tracks(moov: bytes) -> dict[int, Track]:
    """The tracks of a ``moov`` box's payload: track_ID -> :class:`Track`."""
    found: dict[int, Track] = {}
    trex_flags: dict[int, int] = {}
    mvex = child(moov, b"mvex")
    for kind, body in children(mvex or b""):
        if kind == b"trex":
            _full_box(body, 24)
            track_id, _, _, _, flags = struct.unpack_from(">5I", body, 4)
            trex_flags[track_id] = flags
    for kind, trak in children(moov):
        if kind != b"trak":
            continue
        tkhd, mdia = child(trak, b"tkhd"), child(trak, b"mdia")
        mdhd = child(mdia, b"mdhd") if mdia is not None else None
        if tkhd is None or mdhd is None:
            continue
        version, _ = _full_box(tkhd, 16)
        _full_box(tkhd, 24 if version == 1 else 16)
        (track_id,) = struct.unpack_from(">I", tkhd, 20 if version == 1 else 12)
        version, _ = _full_box(mdhd, 16)
        _full_box(mdhd, 24 if version == 1 else 16)
        (timescale,) = struct.unpack_from(">I", mdhd, 20 if version == 1 else 12)
        if timescale:
            found[track_id] = Track(timescale, trex_flags.get(track_id, 0))
    return found


@dataclass(frozen=True)
class FragmentStart:
    """A fragment's first sample: its track, presentation time (in the track's ticks) and
    whether it is a sync sample (a keyframe)."""

    track_id: int
    time: int
    keyframe: bool


def fragment_start(moof: bytes, known: dict[int, Track]) -> FragmentStart | None:
    """The first sample of a ``moof`` box's payload (its first track fragment with a
    sample), or None if it has none. Raises BoxError for a malformed box."""
    for kind, traf in children(moof):
        if kind != b"traf":
            continue
        tfhd, tfdt, trun = (child(traf, k) for k in (b"tfhd", b"tfdt", b"trun"))
        if tfhd is None or tfdt is None or trun is None:
            continue
        _, tf_flags = _full_box(tfhd, 8)
        (track_id,) = struct.unpack_from(">I", tfhd, 4)
        track = known.get(track_id)
        if track is None:
            continue
        flags = track.default_flags
        if tf_flags & 0x20:  # default-sample-flags-present, after the optional fields
            at = 8 + sum(
                size for bit, size in ((1, 8), (2, 4), (8, 4), (0x10, 4)) if tf_flags & bit
            )
            _full_box(tfhd, at + 4)
            (flags,) = struct.unpack_from(">I", tfhd, at)
        version, _ = _full_box(tfdt, 8)
        if version == 1:
            _full_box(tfdt, 12)
            (decode_time,) = struct.unpack_from(">Q", tfdt, 4)
        else:
            (decode_time,) = struct.unpack_from(">I", tfdt, 4)
        start = _first_sample(trun, flags)
        if start is None:
            continue
        flags, offset = start
        time = decode_time + offset
        return FragmentStart(track_id, time, not flags & NON_SYNC)
    return None


def _first_sample(trun: bytes, flags: int) -> tuple[int, int] | None:
    """The flags and composition offset of a ``trun``'s first sample (None: no sample),
    ``flags`` being what it inherits when the trun gives none."""
    version, tr_flags = _full_box(trun, 8)
    (count,) = struct.unpack_from(">I", trun, 4)
    if count == 0:
        return None
    at = 8 + (4 if tr_flags & 0x1 else 0)  # data-offset
    if tr_flags & 0x4:  # first-sample-flags
        _full_box(trun, at + 4)
        (flags,) = struct.unpack_from(">I", trun, at)
        at += 4
    fields = [bit for bit in (0x100, 0x200, 0x400, 0x800) if tr_flags & bit]
    _full_box(trun, at + 4 * len(fields))
    values = dict(zip(fields, struct.unpack_from(f">{len(fields)}I", trun, at), strict=True))
    if 0x400 in values and not tr_flags & 0x4:
        flags = values[0x400]
    offset = values.get(0x800, 0)
    if version == 1 and offset >= 1 << 31:  # signed in version 1
        offset -= 1 << 32
    return flags, offset


@dataclass
class FragmentIndex:
    """Built as a clip's boxes go by (:meth:`add`); :meth:`encode` gives the JSON.

    ``init`` is the end of the ``moov`` (0 until it came); ``keyframes`` holds
    (seconds, moof offset) for each fragment that starts with a sync sample of
    the first video track seen. ``problem`` says why boxes stopped being read
    (a malformed ``moov`` or ``moof``), or "": the keyframes found before stay.
    """

    init: int = 0
    keyframes: list[tuple[float, int]] = field(default_factory=list)
    problem: str = ""
    _tracks: dict[int, Track] = field(default_factory=dict)
    _track: int | None = None

    def add(self, offset: int, kind: bytes, box: bytes) -> None:
        """A whole top-level box (header included) that starts at ``offset``."""
        if self.problem:
            return
        payload = box[16:] if box[:4] == b"\0\0\0\1" else box[8:]
        try:
            if kind == b"moov" and not self.init:
                self._tracks = tracks(payload)
                self.init = offset + len(box)
            elif kind == b"moof" and self.init:
                start = fragment_start(payload, self._tracks)
                if start is None:
                    return
                if self._track is None:
                    self._track = start.track_id
                if start.keyframe and start.track_id == self._track:
                    seconds = start.time / self._tracks[start.track_id].timescale
                    self.keyframes.append((round(seconds, 3), offset))
        except BoxError as err:
            self.problem = f"the {kind.decode('latin-1')} box at byte {offset}: {err}"

    def encode(self, size: int) -> bytes | None:
        """The index of an MP4 of ``size`` bytes as UTF-8 JSON: only keyframes whose
        fragment starts before ``size`` (a file a full disk ended early). None if no
        ``moov`` came, or the file ends inside it: nothing to seek in."""
        if not self.init or size < self.init:
            return None
        keyframes = [[t, offset] for t, offset in self.keyframes if offset < size]
        data = {"version": VERSION, "size": size, "init": self.init, "keyframes": keyframes}
        return json.dumps(data, separators=(",", ":")).encode()


def decode(data: bytes) -> dict:
    """The index from its JSON (as :meth:`FragmentIndex.encode` wrote it); ValueError if it
    is not one of this version."""
    found = json.loads(data)
    if not isinstance(found, dict) or found.get("version") != VERSION:
        raise ValueError("not a version 1 fragment index")
    return found
