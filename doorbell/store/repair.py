"""Repair after unlock: each clip a crash cut off becomes a finished clip of its intact,
playable part.

    for done in store.repair(identities):   # ClipStore.repair runs repair_clip per clip
        done.problem                        # "" when it was repaired

The intact plaintext of ``<id>.mp4.age.part`` goes straight into a new age
file (``<id>.mp4.age.repair.part``, renamed into place), cut back to its last
whole MP4 fragment on the way (:func:`~doorbell.store.fragments.trim`), so
strict players play it to its end. Plaintext lives in RAM only, at most a
fragment and a chunk of it (law 1).

Every clip is repaired on its own: one clip's failure is reported once, by
name, and never stops the others. A clip is removed when nothing in it can
ever play: no chunk authenticates, its header is damaged (the file key is
lost), or its intact part holds no whole frame (a power cut in its first
moments). A clip this unlock's identity cannot open stays as it is (another
owner's identity may); a disk error leaves it for the next unlock.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from doorbell import vault
from doorbell.store.fragments import Trimmed, trim
from doorbell.store.index import Clip
from doorbell.store.layout import PART, THUMBNAIL, VIDEO

if TYPE_CHECKING:
    from doorbell.store.clips import ClipStore

REPAIR = ".repair"  # the new file's suffix while it is written (layout.LEFTOVER)


@dataclass(frozen=True)
class Repaired:
    """What repair did with one clip.

    ``recovery``: what the vault authenticated of the video's ``.part``;
    ``kept``: plaintext bytes of the repaired video (its whole fragments) and
    ``frames`` their count; ``problem``: why it was not repaired, "" if it was;
    ``removed``: the clip is gone (nothing in it could ever play).
    """

    clip_id: str
    recovery: vault.Recovery
    kept: int = 0
    frames: int = 0
    problem: str = ""
    removed: bool = False

    def describe(self) -> str:
        """One line for the log, naming the clip."""
        if self.problem:
            return f"clip {self.clip_id}: {self.problem}"
        return (
            f"clip {self.clip_id} repaired: {self.kept} bytes, {self.frames} whole frame(s) "
            f"kept ({self.recovery.describe()})"
        )


def repair_clip(
    store: ClipStore,
    clip: Clip,
    identities: Sequence[vault.Identity],
    recipients: list[vault.Recipient],
) -> Repaired:
    """Repair ``clip`` (state "partial"): the result says what happened. Raises nothing
    for a problem of the clip's own files; a failure of the index itself propagates."""
    recovery = vault.Recovery()
    trimmed = Trimmed()
    try:
        if store.path(clip.id, VIDEO + PART).exists():
            _recover(store, clip.id, VIDEO, identities, recipients, recovery, trimmed)
    except vault.NoIdentityMatchError as err:
        return Repaired(
            clip.id, recovery, problem=f"not repaired: {err.detail}; left for an identity that does"
        )
    except (vault.HeaderError, vault.HeaderMacError) as err:
        store.delete(clip.id)
        return Repaired(
            clip.id,
            recovery,
            problem=f"removed: its age header is damaged ({err.detail}), so nothing in it "
            "can be decrypted",
            removed=True,
        )
    except OSError as err:
        return Repaired(
            clip.id, recovery, problem=f"not repaired now ({err}); tried again at the next unlock"
        )
    thumbnail_problem = _thumbnail(store, clip.id, identities, recipients)
    video = store.path(clip.id, VIDEO)
    if not video.exists():
        store.delete(clip.id)
        return Repaired(
            clip.id, recovery, problem=f"removed: {_nothing(recovery, trimmed)}", removed=True
        )
    end = video.stat().st_mtime
    store.index.put(replace(clip, end=end, bytes=store._bytes(clip.id), state="complete"))
    return Repaired(clip.id, recovery, trimmed.kept, trimmed.fragments, problem=thumbnail_problem)


def _nothing(recovery: vault.Recovery, trimmed: Trimmed) -> str:
    """Why a clip has nothing to keep."""
    if recovery.plaintext_bytes == 0:
        why = f" ({recovery.error.detail})" if recovery.error else ""
        return f"no chunk of it authenticates{why}: nothing to recover"
    return (
        f"its {recovery.plaintext_bytes} intact bytes hold no whole video frame "
        "(cut off in its first moments): nothing to play"
    )


def _thumbnail(
    store: ClipStore,
    clip_id: str,
    identities: Sequence[vault.Identity],
    recipients: list[vault.Recipient],
) -> str:
    """Recover the thumbnail's ``.part``, if any; a thumbnail that cannot be is removed
    (the clip plays without it). Returns what went wrong, or ""."""
    part = store.path(clip_id, THUMBNAIL + PART)
    if not part.exists():
        return ""
    try:
        _recover(store, clip_id, THUMBNAIL, identities, recipients, vault.Recovery(), None)
    except (vault.VaultError, OSError) as err:
        with contextlib.suppress(FileNotFoundError):
            part.unlink()
        return f"repaired, but its thumbnail could not be recovered ({err}); removed"
    return ""


def _recover(
    store: ClipStore,
    clip_id: str,
    suffix: str,
    identities: Sequence[vault.Identity],
    recipients: list[vault.Recipient],
    recovery: vault.Recovery,
    trimmed: Trimmed | None,
) -> None:
    """The intact part of ``<id><suffix>.part`` (for a video, up to its last whole
    fragment) into ``<id><suffix>``, the ``.part`` removed; nothing written if there is
    nothing to keep. Raises the vault's header errors and OSError, leaving no new file."""
    part = store.path(clip_id, suffix + PART)
    mtime = part.stat().st_mtime
    with open(part, "rb") as source:
        chunks: Iterator[bytes] = vault.recover(source, identities, recovery, str(part))
        if trimmed is not None:
            chunks = trim(chunks, trimmed)
        first = next(chunks, b"")
        if first:
            writer = store._create(clip_id, suffix + REPAIR, recipients)
            try:
                writer.write(first)
                for chunk in chunks:
                    writer.write(chunk)
            except BaseException:
                writer.discard()
                raise
            writer.close()
            repaired = store.path(clip_id, suffix + REPAIR)
            os.utime(repaired, (mtime, mtime))
            repaired.replace(store.path(clip_id, suffix))
    part.unlink()
