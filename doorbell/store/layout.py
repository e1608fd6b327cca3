"""The names of a clip's files in ``<data dir>/clips/``: one clip, up to five files.

    <id>.mp4.age        the clip, fragmented MP4 inside age (a crash-cut one: as it was cut)
    <id>.jpg.age        its thumbnail
    <id>.idx.age        its fragment index: where each keyframe's fragment starts (JSON)
    <id>.keep           marker: the owner chose to keep this clip
    <id>.cut            marker: its video was cut off by a crash (it has no final chunk)

Each of the three age files is ``<name>.part`` while it is written (a video's
``.part`` is also what a crash leaves, until the next start keeps it as cut).

An id is 16 random hex digits; anything else is never turned into a path.
"""

import re

from doorbell.vault import PART_SUFFIX

VIDEO = ".mp4.age"
THUMBNAIL = ".jpg.age"
INDEX = ".idx.age"
KEEP = ".keep"
CUT = ".cut"
PART = PART_SUFFIX
ENCRYPTED = (VIDEO, THUMBNAIL, INDEX)  # the age files of a clip; each may be a .part first
_ID = re.compile(r"[0-9a-f]{16}")
FILE = re.compile(r"([0-9a-f]{16})(\.mp4\.age|\.jpg\.age|\.idx\.age|\.keep|\.cut)(\.part)?")
# What the repair of earlier versions left when it was cut off: removed at open.
LEFTOVER = re.compile(r"[0-9a-f]{16}\.(mp4|jpg)\.age\.repair(\.part)?")


def valid_id(clip_id: str) -> bool:
    """Whether ``clip_id`` is a clip id (16 lowercase hex digits), safe in a file name."""
    return bool(_ID.fullmatch(clip_id))
