"""The names of a clip's files in ``<data dir>/clips/``: one clip, up to four files.

    <id>.mp4.age        the clip, fragmented MP4 inside age
    <id>.jpg.age        its thumbnail
    <id>.mp4.age.part   a clip being written, or cut off by a crash
    <id>.keep           marker: the owner chose to keep this clip

An id is 16 random hex digits; anything else is never turned into a path.
"""

import re

from doorbell.vault import PART_SUFFIX

VIDEO = ".mp4.age"
THUMBNAIL = ".jpg.age"
KEEP = ".keep"
PART = PART_SUFFIX
_ID = re.compile(r"[0-9a-f]{16}")
FILE = re.compile(r"([0-9a-f]{16})(\.mp4\.age|\.jpg\.age|\.keep)(\.part)?")
LEFTOVER = re.compile(r"[0-9a-f]{16}\.(mp4|jpg)\.age\.repair(\.part)?")


def valid_id(clip_id: str) -> bool:
    """Whether ``clip_id`` is a clip id (16 lowercase hex digits), safe in a file name."""
    return bool(_ID.fullmatch(clip_id))
