"""Where a fragmented MP4 may end: its top-level boxes, read as the bytes go by.

A clip is ``ftyp``, ``moov`` (no samples: ``empty_moov``), then one ``moof`` +
``mdat`` pair a frame, and ``mfra`` once finished. A file cut anywhere else
(a crash, a full disk) ends inside a fragment, and strict players (Chromium,
``ffmpeg -xerror``) stop with an error on its last packet. So a clip being
written marks each whole fragment (:class:`FragmentScanner`, used by the
recording to tell the vault where the file may end), and a clip recovered
after a crash is cut back to its last whole fragment (:func:`trim`).

    scanner = FragmentScanner(keep=(b"moov", b"moof"))
    ends = scanner.feed(data)     # offsets where a whole fragment ended in ``data``
    scanner.fragments             # whole moof+mdat pairs so far
    scanner.take_boxes()          # [(offset, type, whole box)] of the kept types

Only box headers are parsed (8 or 16 bytes a box); payloads are skipped by
count, never held, except those of the few small box types asked for in
``keep`` (a clip's ``moov`` and ``moof`` boxes: a few hundred bytes each, for
its fragment index, :mod:`~doorbell.store.fragment_index`). Pure: no I/O, no
video library.
"""

from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass

_SIZE, _LARGE = 8, 16  # a box header: 32-bit size and type; with a 64-bit size after
KEEP_AT_MOST = 1 << 20  # a kept box larger than this (never a real moov or moof) is skipped


class FragmentScanner:
    """The top-level boxes of an MP4 stream fed to it in pieces of any size.

    ``is_mp4`` is None until 8 bytes came, then whether the stream starts with
    ``ftyp``. ``safe_end`` is the end of the last box after which the stream
    is playable (the ``mdat`` of a whole fragment, or a later whole box that is
    not a ``moof``), 0 before the first whole fragment; ``fragments`` counts
    whole ``moof`` + ``mdat`` pairs. ``broken`` says why scanning stopped (a
    box whose size cannot be, or one that runs to the end of the file), or "".
    Whole top-level boxes of the types in ``keep`` (up to :data:`KEEP_AT_MOST`
    bytes each) are held until :meth:`take_boxes`.
    """

    def __init__(self, keep: Collection[bytes] = ()) -> None:
        self.offset = 0  # bytes fed so far
        self.is_mp4: bool | None = None
        self.safe_end = 0
        self.fragments = 0
        self.broken = ""
        self._head = bytearray()  # the header of the next box, while incomplete
        self._box_end = 0  # where the current box ends (absolute offset)
        self._box = b""  # its type
        self._moov = False
        self._moof_pending = False
        self._keep = frozenset(keep)
        self._box_start = 0
        self._kept: bytearray | None = None  # the box being kept, while it comes
        self._boxes: list[tuple[int, bytes, bytes]] = []

    def take_boxes(self) -> list[tuple[int, bytes, bytes]]:
        """The kept boxes closed since the last call: (offset, type, the whole box)."""
        boxes, self._boxes = self._boxes, []
        return boxes

    def feed(self, data: bytes | bytearray | memoryview) -> list[int]:
        """Scan ``data`` (the next bytes); the offsets where a whole fragment ended in it."""
        ends: list[int] = []
        view = memoryview(data).cast("B")
        start = self.offset
        self.offset += len(view)
        if self.broken or self.is_mp4 is False:
            return ends
        pos = start
        while pos < self.offset:
            if pos < self._box_end:  # inside a box's payload: skip it (or keep it)
                until = min(self._box_end, self.offset)
                if self._kept is not None:
                    self._kept += view[pos - start : until - start]
                pos = until
                if pos == self._box_end:
                    self._closed(ends)
                continue
            need = _LARGE if self._head[:4] == b"\0\0\0\1" else _SIZE
            take = min(need - len(self._head), self.offset - pos)
            self._head += view[pos - start : pos - start + take]
            pos += take
            if len(self._head) == _SIZE and self._head[:4] == b"\0\0\0\1":
                continue  # a 64-bit size follows
            if len(self._head) < need:
                break
            if not self._opened(pos - len(self._head)):
                break
            if pos == self._box_end:  # an empty box
                self._closed(ends)
        return ends

    def _opened(self, at: int) -> bool:
        head, self._head = bytes(self._head), bytearray()
        size = int.from_bytes(head[:4], "big")
        kind = head[4:8]
        if size == 1:
            size = int.from_bytes(head[8:16], "big")
        if self.is_mp4 is None:
            self.is_mp4 = kind == b"ftyp"
            if not self.is_mp4:
                return False
        if size == 0:
            self.broken = f"the {_name(kind)} box at byte {at} runs to the end of the file"
        elif size < len(head) or not all(32 <= c < 127 for c in kind):
            self.broken = f"no valid box at byte {at}"
        if self.broken:
            return False
        self._box, self._box_start, self._box_end = kind, at, at + size
        if kind in self._keep and size <= KEEP_AT_MOST:
            self._kept = bytearray(head)
        return True

    def _closed(self, ends: list[int]) -> None:
        kind = self._box
        if self._kept is not None:
            self._boxes.append((self._box_start, kind, bytes(self._kept)))
            self._kept = None
        if kind == b"moov":
            self._moov = True
        elif kind == b"moof":
            self._moof_pending = True
            return
        elif kind == b"mdat" and self._moof_pending:
            self.fragments += 1
            self._moof_pending = False
            self.safe_end = self._box_end
            ends.append(self._box_end)
            return
        if self._moov and self.fragments and not self._moof_pending:
            self.safe_end = self._box_end  # a whole box after the fragments (mfra)
        self._moof_pending = False


@dataclass
class Trimmed:
    """What :func:`trim` kept: ``kept`` bytes with ``fragments`` whole fragments, and
    ``dropped`` bytes after the last whole one. ``is_mp4`` False: not an MP4, passed
    on whole. ``broken``: why scanning stopped early (see :class:`FragmentScanner`)."""

    kept: int = 0
    dropped: int = 0
    fragments: int = 0
    is_mp4: bool | None = None
    broken: str = ""

    @property
    def playable(self) -> bool:
        """Whether anything plays: a whole fragment, or data that is not an MP4 at all."""
        return self.fragments > 0 or (self.is_mp4 is False and self.kept > 0)


def trim(pieces: Iterable[bytes], result: Trimmed) -> Iterator[bytes]:
    """Yield the bytes of ``pieces`` up to the last whole fragment, as they become certain.

    Holds back at most one fragment (one frame) and the piece being read; what
    follows the last whole fragment is dropped. A stream that does not start
    with ``ftyp`` is passed on unchanged. ``result`` is filled in as it goes.
    """
    scanner = FragmentScanner()
    held = bytearray()
    for piece in pieces:
        scanner.feed(piece)
        held += piece
        if scanner.is_mp4 is False:
            result.is_mp4 = False
            result.kept += len(held)
            yield bytes(held)
            held.clear()
            continue
        ready = scanner.safe_end - result.kept
        if ready > 0:
            result.kept += ready
            yield bytes(held[:ready])
            del held[:ready]
    result.is_mp4 = scanner.is_mp4
    result.fragments = scanner.fragments
    result.broken = scanner.broken
    result.dropped = len(held)


def _name(kind: bytes) -> str:
    return kind.decode("latin-1")
