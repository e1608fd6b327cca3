"""What stops the recorder, and how it says so: a full disk and a data folder that cannot
be written, told apart by errno (never by a message), each with its one status line.

    if out_of_space(err): ...        # ENOSPC, EDQUOT: the vault, the index, the disk
    if storage_failure(err): ...     # EROFS, EIO, EACCES …: read-only, failing, gone
    disk_full_fault(kept, recent)    # "disk full: kept clips use 3.2 GB; …"
    storage_fault(folder, err)       # "storage fault: /var/lib/doorbell: read-only …"

The lines are what the status page, the journal and systemd's STATUS= show.
"""

import errno
import os

from doorbell.vault import is_disk_full

# What the disk, not the recorder, is to blame for: wait it out, never reopen the camera.
STORAGE_ERRNOS = frozenset(
    {
        errno.EROFS,
        errno.EIO,
        errno.EACCES,
        errno.EPERM,
        errno.ENOENT,
        errno.ENOTDIR,
        errno.ENODEV,
        errno.ENXIO,
        errno.EUCLEAN,
    }
)


def out_of_space(err: BaseException) -> bool:
    """A write failed for want of space: the vault's ``DiskFullError``, the store's
    ``StoreFullError`` (its index) and any other ENOSPC/EDQUOT from the disk all carry
    that errno, so the kind is read from it, never from a message."""
    return is_disk_full(err)


def storage_failure(err: BaseException) -> bool:
    """A write failed because the data folder cannot be written (read-only, failing,
    gone), by its errno: the index maps SQLite's errors to these too."""
    return isinstance(err, OSError) and err.errno in STORAGE_ERRNOS


def _size(n: int) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 100_000_000 else f"{n / 1e6:.0f} MB"


def disk_full_fault(kept: int, recent: int) -> str:
    """The status line for a disk full of clips no rule may delete: ``kept`` bytes of
    kept clips, ``recent`` bytes of unkept ones recorded since the disk filled."""
    held = []
    if kept:
        held.append(f"kept clips use {_size(kept)}")
    if recent:
        held.append(f"clips recorded since it filled {'' if kept else 'use '}{_size(recent)}")
    what = " and ".join(held) if held else "other files than clips fill it"
    return f"disk full: {what}; nothing is recorded until there is room (unkeep or delete clips)"


def storage_fault(folder: object, err: OSError) -> str:
    """The status line for a data folder that cannot be written."""
    reason = os.strerror(err.errno) if err.errno else str(err)
    reason = reason[:1].lower() + reason[1:]
    return f"storage fault: {folder}: {reason}; nothing is recorded until it is writable again"
