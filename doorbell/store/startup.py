"""What the store does when it opens: the index checked against the clip files.

    index, rebuilt = open_index(data_dir, folder, clock)   # ClipStore.__init__ does this
    report = reconcile(store, rebuilt)                    # a StartupReport, for the log

The index is a cache: the files under ``clips/`` are the truth. At open the
index is checked against them, and rebuilt from them if missing or corrupt (a
corrupt file is moved aside, named for the time it was found). A rebuilt row
takes its times from the files' mtimes (set at finish: thumbnail = start,
video = end), its keep flag from the marker; only the trigger is lost
("unknown"), and with it which boot the clip was of: a rebuilt row is
time-certain unless its time is before :data:`doorbell.clock.PLAUSIBLE_AFTER`
(a clip whose clock was wrong and not yet corrected comes back with that
clock's times).

What a crash leaves is settled here too, with no identity and without
reading a byte of any payload (the device never decrypts): a clip's video cut
off by a crash (``<id>.mp4.age.part``, an age STREAM without its final chunk)
is kept as it is (:func:`keep_cut`: marked ``<id>.cut``, renamed to
``<id>.mp4.age``), state ``partial`` (shown as "cut short"), its end its
file's mtime. The owner's browser plays it to its last whole fragment, and
``doorbell decrypt --recover`` gives back its authenticated prefix, cut to its
last whole fragment. A ``.part`` cut off in its first moment (empty, or ending
in its age header or nonce) can never give anything back and is removed, and
so are a thumbnail's or fragment index's ``.part`` (written whole in a moment,
so cut they hold nothing to show; the clip plays without them) and the
leftovers of the repair of earlier versions.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from doorbell import clock as clocks
from doorbell import vault
from doorbell.store.index import Clip, Index, IndexCorrupt
from doorbell.store.layout import CUT, FILE, INDEX, KEEP, LEFTOVER, PART, THUMBNAIL, VIDEO

if TYPE_CHECKING:
    from doorbell.store.clips import ClipStore


@dataclass
class StartupReport:
    """What the store found when it opened, for the log and the status page."""

    rebuilt: str | None = None  # why the index was rebuilt, if it was
    partial: list[str] = field(default_factory=list)  # clips cut off by a crash, kept as cut
    finished: list[str] = field(default_factory=list)  # renamed but not indexed: adopted
    dropped: list[str] = field(default_factory=list)  # rows whose files are gone
    removed: list[str] = field(default_factory=list)  # "clip <id>: why", nothing recoverable

    def lines(self) -> list[str]:
        out = [f"index rebuilt from the clip files: {self.rebuilt}"] if self.rebuilt else []
        if self.partial:
            out.append(
                f"{len(self.partial)} clip(s) cut off by a crash or power cut "
                f"({', '.join(self.partial)}); kept as they are, cut short: each plays to its "
                "last whole fragment"
            )
        if self.finished:
            out.append(f"{len(self.finished)} finished clip(s) added to the index")
        if self.dropped:
            out.append(f"{len(self.dropped)} index row(s) without files removed")
        out += [f"{line}; removed" for line in self.removed]
        return out


def open_index(
    data_dir: Path, folder: Path, clock: Callable[[], float]
) -> tuple[Index, str | None]:
    """The index ``<data_dir>/index.sqlite3`` and why it must be rebuilt, or None.

    A corrupt index (and its ``-wal``/``-shm``) is moved aside to
    ``index.sqlite3.corrupt-<clock() in whole seconds>`` and a new, empty one made. A
    missing index needs rebuilding only when ``folder`` (the clip folder) holds files.
    """
    path = data_dir / "index.sqlite3"
    existed = path.exists()
    try:
        index = Index(path)
    except IndexCorrupt as err:
        aside = path.with_name(f"{path.name}.corrupt-{int(clock())}")
        for suffix in ("", "-wal", "-shm"):
            old = Path(f"{path}{suffix}")
            if old.exists():
                old.replace(Path(f"{aside}{suffix}"))
        return Index(path), f"{err}; the old file was moved to {aside.name}"
    if existed or not any(folder.iterdir()):
        return index, None  # a new data dir has nothing to rebuild: nothing to say
    return index, "no index file"


def find_files(store: ClipStore) -> dict[str, set[str]]:
    """The clip files in the store's folder: id -> its suffixes (``VIDEO``, ``VIDEO +
    PART``, ``THUMBNAIL``, ``KEEP``...). Removes what a cut-off repair of an earlier
    version left: a leftover ``.repair`` file, and a ``.part`` whose finished file is
    already there."""
    found: dict[str, set[str]] = {}
    for entry in os.scandir(store.folder):
        match = FILE.fullmatch(entry.name)
        if match:
            found.setdefault(match[1], set()).add(match[2] + (match[3] or ""))
        elif LEFTOVER.fullmatch(entry.name):  # a repair cut off: its .part is still there
            Path(entry.path).unlink()
    for clip_id, kinds in found.items():
        for suffix in (VIDEO, THUMBNAIL):
            if suffix in kinds and suffix + PART in kinds:  # a repair done but for cleanup
                store.path(clip_id, suffix + PART).unlink()
                kinds.discard(suffix + PART)
    return found


def row_from_files(store: ClipStore, clip_id: str, kinds: set[str]) -> Clip:
    """An index row for a clip the index does not know, from its files (``kinds``, its
    suffixes, holds ``VIDEO`` or ``VIDEO + PART``): times from their mtimes, keep from
    the marker, trigger "unknown"; ``complete`` if the video is finished, else
    ``partial``."""
    video = store.path(clip_id, VIDEO if VIDEO in kinds else VIDEO + PART).stat()
    thumb = store.path(clip_id, THUMBNAIL)
    start = thumb.stat().st_mtime if thumb.exists() else video.st_mtime
    state = "partial" if CUT in kinds or VIDEO not in kinds else "complete"
    keep = KEEP in kinds
    uncertain = not clocks.plausible(start)  # a 1970 mtime; any other one is believed
    row = Clip(clip_id, start, video.st_mtime, "unknown", store._bytes(clip_id), keep, state)
    return replace(row, time_uncertain=uncertain)


def remove_cut_files(store: ClipStore, files: dict[str, set[str]], report: StartupReport) -> None:
    """A ``.part`` cut off in its first moment (empty, or ending in its age header) can
    never give anything back: remove it, with its whole clip (files, row and entry in
    ``files``) if it is the video, and say so once in ``report.removed``. A thumbnail's
    ``.part`` goes too, said, and a fragment index's, silently (the clip plays without
    them). Needs no identity, so it runs at every open."""
    for clip_id, kinds in list(files.items()):
        if INDEX + PART in kinds:
            store.path(clip_id, INDEX + PART).unlink()
            kinds.discard(INDEX + PART)
        if THUMBNAIL + PART in kinds:
            store.path(clip_id, THUMBNAIL + PART).unlink()
            kinds.discard(THUMBNAIL + PART)
            report.removed.append(f"the thumbnail of clip {clip_id}: cut off while written")
        if VIDEO + PART not in kinds or VIDEO in kinds:
            continue
        with open(store.path(clip_id, VIDEO + PART), "rb") as file:
            why = vault.cut_in_header(file)
        if why is not None:
            for other in kinds:
                store.path(clip_id, other).unlink(missing_ok=True)
            store.index.remove(clip_id)
            del files[clip_id]
            report.removed.append(f"clip {clip_id}: {why} (a power cut as it began)")


def keep_cut(store: ClipStore, clip_id: str) -> str | None:
    """Keep a clip's video cut off by a crash as it is: the marker ``<id>.cut``, then
    ``<id>.mp4.age.part`` renamed to ``<id>.mp4.age`` (each made durable: fsync of the
    folder). Reads its age header only, never its payload, and needs no identity.

    Returns None when the video is in place (it was already), or why nothing of the
    clip can ever play, leaving its files as they are: the ``.part`` ends inside its
    header or nonce, or there is no video file at all. Raises OSError (a failing disk).
    """
    part, video = store.path(clip_id, VIDEO + PART), store.path(clip_id, VIDEO)
    try:
        with open(part, "rb") as file:
            why = vault.cut_in_header(file)
    except FileNotFoundError:
        return None if video.exists() else "its video file is gone"
    if why is not None:
        return why
    marker = store.path(clip_id, CUT)
    marker.touch()
    _sync_folder(store.folder)  # the marker first: a renamed video is never taken for whole
    part.replace(video)
    _sync_folder(store.folder)
    return None


def _sync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def keep_cut_files(store: ClipStore, files: dict[str, set[str]], report: StartupReport) -> None:
    """Every video ``.part`` left (one whose header is whole: after
    :func:`remove_cut_files`) kept as it is (:func:`keep_cut`); each said once in
    ``report.partial``, and ``files`` updated."""
    for clip_id, kinds in files.items():
        if VIDEO + PART in kinds and keep_cut(store, clip_id) is None:
            kinds.discard(VIDEO + PART)
            kinds.update((VIDEO, CUT))
            report.partial.append(clip_id)


def reconcile(store: ClipStore, rebuilt: str | None) -> StartupReport:
    """Make the store's index agree with its files, and say what changed: a video cut off
    by a crash kept as it is, rows added for files it lacks, each row's state made the
    files' (``partial`` if the clip's video is marked cut, else ``complete``) with its
    end from the video's mtime where it had none or its state changed, rows whose video
    is gone removed. ``rebuilt``: why the index was rebuilt (from :func:`open_index`),
    for the report."""
    report = StartupReport(rebuilt=rebuilt)
    files = find_files(store)
    remove_cut_files(store, files, report)
    keep_cut_files(store, files, report)
    rows = {clip.id: clip for clip in store.index.list(states=("recording", "partial", "complete"))}
    fixed = []
    for clip_id, kinds in files.items():
        if VIDEO not in kinds:  # a thumbnail, index or marker whose clip is gone
            for suffix in kinds:
                store.path(clip_id, suffix).unlink(missing_ok=True)
            continue
        row = rows.pop(clip_id, None)
        if row is None:
            fixed.append(row_from_files(store, clip_id, kinds))
            continue
        state = "partial" if CUT in kinds else "complete"
        if row.state == state and row.end is not None:
            continue
        end = row.end if row.state == state else None
        if end is None:
            end = store.path(clip_id, VIDEO).stat().st_mtime
        fixed.append(replace(row, end=end, bytes=store._bytes(clip_id), state=state))
        if state == "complete":
            report.finished.append(clip_id)
    store.index.put_many(fixed)
    for clip_id in rows:  # rows whose video is gone
        store.index.remove(clip_id)
        report.dropped.append(clip_id)
    return report
