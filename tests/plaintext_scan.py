"""Plaintext at rest, looked for in every byte of every file under some folders: the
signatures a clip, a picture or an owner's key would leave if it were ever written in
the clear.

    scan = scan_folders([data_dir, tmp_dir])
    assert scan.hits == []                         # (path, offset, kind) of each find
    assert scan.bytes_read == total size of the files   # it read everything

What counts (each checked so that random bytes, i.e. age ciphertext, practically never
match: about one false find in 10^4 runs of 30 MB):

* an MP4 box: a 4-byte big-endian size, then ``ftyp`` (16-256 bytes, a printable
  brand), ``moov`` or ``moof`` (at least 16 bytes; a first child box with a lower-case
  name, ``mfhd`` for ``moof``), ``mdat`` (size 0 "to the end", 1 "64-bit size
  follows", or 8 bytes to 64 MiB);
* a JPEG: FF D8 FF and then a chain of at least three well-formed segments (markers
  of the header, each at the offset the last one's length gives) or two and the end of
  the file, or one and the start of the scan (SOS);
* a PNG: its 8-byte signature;
* an age identity: ``AGE-SECRET-KEY-1`` in any case.
"""

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

MP4_BOX = re.compile(rb"ftyp|moov|moof|mdat")
JPEG_START = re.compile(rb"\xff\xd8\xff")
PNG = re.compile(re.escape(b"\x89PNG\r\n\x1a\n"))
IDENTITY = re.compile(rb"AGE-SECRET-KEY-1", re.IGNORECASE)
BOX_NAME = re.compile(rb"[a-z0-9]{4}")
BRAND = re.compile(rb"[A-Za-z0-9 ]{4}")

# the markers of a JPEG's header: SOFn, DHT, DAC, DQT, DRI, SOS, APPn, COM
JPEG_HEADER_MARKERS = frozenset(
    [*range(0xC0, 0xC8), *range(0xC9, 0xD0), 0xDA, 0xDB, 0xDD, *range(0xE0, 0xF0), 0xFE]
)
START_OF_SCAN = 0xDA


def _mp4_box(data: bytes, at: int) -> str | None:
    """The MP4 box whose size field starts at ``at``, if it is a plausible one."""
    if at < 0:
        return None
    size = int.from_bytes(data[at : at + 4], "big")
    kind = data[at + 4 : at + 8]
    child = data[at + 12 : at + 16]
    if kind == b"ftyp":
        plausible = 16 <= size <= 256 and BRAND.fullmatch(data[at + 8 : at + 12]) is not None
    elif kind == b"moof":
        plausible = size >= 16 and child == b"mfhd"
    elif kind == b"moov":
        plausible = size >= 16 and BOX_NAME.fullmatch(child) is not None
    else:  # mdat
        plausible = size in (0, 1) or 8 <= size <= 64 << 20
    return f"MP4 box {kind.decode()}" if plausible else None


def _jpeg(data: bytes, at: int) -> bool:
    """Whether a JPEG's header starts at ``at`` (where FF D8 FF is)."""
    position, segments = at + 2, 0
    while segments < 3:
        if position + 4 > len(data):
            return segments >= 2  # a JPEG cut short after its first segments
        marker = data[position + 1]
        if data[position] != 0xFF or marker not in JPEG_HEADER_MARKERS:
            return False
        length = int.from_bytes(data[position + 2 : position + 4], "big")
        if length < 2:
            return False
        if marker == START_OF_SCAN:
            return segments >= 1
        position += 2 + length
        segments += 1
    return True


def find_in(data: bytes) -> list[tuple[int, str]]:
    """(offset, kind) of each plaintext signature anywhere in ``data``. Offsets are
    where the signature begins (an MP4 box: its size field)."""
    found = []
    for match in MP4_BOX.finditer(data):
        kind = _mp4_box(data, match.start() - 4)
        if kind is not None:
            found.append((match.start() - 4, kind))
    found += [(m.start(), "JPEG") for m in JPEG_START.finditer(data) if _jpeg(data, m.start())]
    found += [(m.start(), "PNG") for m in PNG.finditer(data)]
    found += [(m.start(), "age identity") for m in IDENTITY.finditer(data)]
    return sorted(found)


@dataclass
class Scan:
    """What :func:`scan_folders` found and read. ``hits``: (path, offset, kind);
    ``files``: every regular file read, with its size; ``skipped``: what was not a
    regular file (sockets, FIFOs, links), by path, with what it was."""

    hits: list[tuple[str, int, str]] = field(default_factory=list)
    files: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def bytes_read(self) -> int:
        return sum(self.files.values())


def scan_file(path: Path, scan: Scan) -> None:
    """Read all of ``path`` into ``scan``: its size, and each signature in it."""
    data = path.read_bytes()
    scan.files[str(path)] = len(data)
    scan.hits += [(str(path), offset, kind) for offset, kind in find_in(data)]


def scan_folders(roots: list[Path]) -> Scan:
    """Every regular file under each of ``roots`` (recursively; links are not followed,
    and are listed in ``skipped``), read whole. OSError if a file cannot be read."""
    scan = Scan()
    for root in roots:
        for folder, _, names in os.walk(root):
            for name in names:
                path = Path(folder) / name
                if path.is_symlink() or not path.is_file():
                    scan.skipped[str(path)] = "link" if path.is_symlink() else "not a file"
                    continue
                scan_file(path, scan)
    return scan


def sizes_now(roots: list[Path]) -> dict[str, int]:
    """The size of every regular file under ``roots`` now, by path (links not followed)."""
    return {
        str(Path(folder) / name): (Path(folder) / name).stat().st_size
        for root in roots
        for folder, _, names in os.walk(root)
        for name in names
        if (Path(folder) / name).is_file() and not (Path(folder) / name).is_symlink()
    }
