"""The clip index: one SQLite table, a cache of what the clip files say.

Plaintext metadata only (id, times, trigger, sizes, keep): the same facts a
directory listing with timestamps would give. Never a frame, never a key.
SQLite runs in WAL mode with ``synchronous=FULL``, so a power cut keeps every
committed row. If the file is missing or corrupt the store rebuilds it from
the clip files (see ``ClipStore``).

Thread ownership: one connection, guarded by ``_lock``; any thread may call.
"""

import errno
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

from doorbell.errors import DoorbellError

SCHEMA = """
CREATE TABLE IF NOT EXISTS clips (
    id      TEXT PRIMARY KEY,
    start   REAL NOT NULL,          -- unix seconds, first frame (pre-roll included)
    end     REAL,                   -- unix seconds, last frame; NULL while recording
    trigger TEXT NOT NULL,          -- bell | motion | pir | manual | unknown
    bytes   INTEGER NOT NULL DEFAULT 0,  -- ciphertext bytes on disk, video + thumbnail
    keep    INTEGER NOT NULL DEFAULT 0,  -- 1: exempt from retention
    state   TEXT NOT NULL,          -- recording | partial | complete
    time_uncertain INTEGER NOT NULL DEFAULT 0,  -- 1: started before the clock was known good
    boot_id TEXT,                   -- the boot it was recorded in (kernel boot_id); NULL: unknown
    boot_start REAL                 -- CLOCK_BOOTTIME seconds at start, in that boot
);
CREATE INDEX IF NOT EXISTS clips_start ON clips(start);
"""

# Columns added after the first release: an older index file gains them when opened.
ADDED_COLUMNS = {
    "time_uncertain": "INTEGER NOT NULL DEFAULT 0",
    "boot_id": "TEXT",
    "boot_start": "REAL",
}

STATES = ("recording", "partial", "complete")
_SELECT = (
    "SELECT id, start, end, trigger, bytes, keep, state, time_uncertain, boot_id, boot_start"
    " FROM clips"
)
_PUT = (
    "INSERT OR REPLACE INTO clips"
    " (id, start, end, trigger, bytes, keep, state, time_uncertain, boot_id, boot_start)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


class IndexCorrupt(Exception):
    """The index file cannot be used; the store rebuilds it."""


class StoreFullError(DoorbellError, OSError):
    """The disk has no room left for the store to record a change.

    SQLite's SQLITE_FULL ("database or disk is full") as the store's own error,
    an ``OSError`` with ``errno`` ENOSPC like the vault's ``DiskFullError``, so
    callers test the kind (``vault.is_disk_full``), never a message's text.
    """

    def __init__(self, path: Path) -> None:
        super().__init__(errno.ENOSPC, "disk full: the clip index cannot record the change")
        self.filename = str(path)

    def __str__(self) -> str:
        return f"{self.filename}: {self.strerror}"


class StorageError(DoorbellError, OSError):
    """The disk under the index cannot be written: read-only, failing, or gone.

    SQLite's SQLITE_READONLY, SQLITE_IOERR and SQLITE_CANTOPEN as an ``OSError``
    with the errno the folder's state gives (EROFS on a read-only mount, ENOENT
    when it is gone, EACCES without write permission, else EIO for an I/O error),
    so callers handle it as any other failing write, by its errno.
    """

    def __init__(self, path: Path, code: int) -> None:
        super().__init__(code, os.strerror(code))
        self.filename = str(path)

    def __str__(self) -> str:
        return f"{self.filename}: {self.strerror}"


_STORAGE_CODES = (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CANTOPEN)


def _full(err: sqlite3.Error) -> bool:
    return getattr(err, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL


def storage_errno(err: sqlite3.Error, path: Path) -> int | None:
    """The errno of a SQLite error that says the disk cannot be written, or None for any
    other error. The primary result code decides the kind; the folder's state the errno."""
    code = getattr(err, "sqlite_errorcode", None)
    if code is None or code & 0xFF not in _STORAGE_CODES:
        return None
    try:
        if os.statvfs(path.parent).f_flag & os.ST_RDONLY:
            return errno.EROFS
    except OSError as gone:
        return gone.errno or errno.EIO
    if code & 0xFF == sqlite3.SQLITE_IOERR:
        return errno.EIO
    if not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        return errno.EACCES
    return errno.EROFS if code & 0xFF == sqlite3.SQLITE_READONLY else errno.EIO


def _mapped(err: sqlite3.Error, path: Path) -> OSError | None:
    """The store's own OSError for a full or unwritable disk under the index, or None."""
    if _full(err):
        return StoreFullError(path)
    code = storage_errno(err, path)
    return None if code is None else StorageError(path, code)


@dataclass(frozen=True)
class Clip:
    """One row of the index. Times are Unix seconds.

    ``time_uncertain``: the clip started while the system clock was not known to
    be right (see :mod:`doorbell.clock`), so ``start`` and ``end`` may be off by
    as much as the clock was. ``boot_id`` and ``boot_start`` (CLOCK_BOOTTIME
    seconds at ``start``) say when it was in a clock that never steps; within
    the same boot that gives the true times later (``ClipStore.correct_times``).
    Rows from before these columns, and rows rebuilt from files, have neither.
    """

    id: str
    start: float
    end: float | None
    trigger: str
    bytes: int
    keep: bool
    state: str
    time_uncertain: bool = False
    boot_id: str | None = None
    boot_start: float | None = None

    @property
    def duration(self) -> float | None:
        return None if self.end is None else max(0.0, self.end - self.start)


class ClipFilters(TypedDict, total=False):
    """The keyword arguments of :meth:`Index.list`, for callers that pass them on."""

    limit: int | None
    before: float | None
    since: float | None
    trigger: str | None
    states: tuple[str, ...]


class Index:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            if self._db.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                raise IndexCorrupt(f"{path}: integrity check failed")
            self._db.executescript(SCHEMA)
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(clips)")}
            if not {"id", "start", "end", "trigger", "bytes", "keep", "state"} <= columns:
                raise IndexCorrupt(f"{path}: the clips table lacks columns")
            self._add_columns(columns)
        except sqlite3.DatabaseError as err:
            self.close()
            mapped = _mapped(err, path)
            if mapped is not None:  # the disk, not the file: nothing to rebuild
                raise mapped from err
            raise IndexCorrupt(f"{path}: {err}") from None
        except IndexCorrupt:
            self.close()
            raise

    def _add_columns(self, columns: set[str]) -> None:
        """Bring an index written before :data:`ADDED_COLUMNS` up to date (one transaction;
        its rows get the defaults: time certain, boot unknown)."""
        missing = [name for name in ADDED_COLUMNS if name not in columns]
        if not missing:
            return
        self._db.execute("BEGIN IMMEDIATE")
        try:
            for name in missing:  # names and types from the fixed table above, never input
                self._db.execute(f"ALTER TABLE clips ADD COLUMN {name} {ADDED_COLUMNS[name]}")
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        db = getattr(self, "_db", None)  # absent if connecting failed, or closed already
        if db is not None:
            db.close()
            del self._db

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction. Raises :class:`StoreFullError` when the disk is full,
        :class:`StorageError` when it cannot be written (read-only, failing, gone)."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                    self._db.execute("COMMIT")
                except BaseException:
                    if self._db.in_transaction:
                        self._db.execute("ROLLBACK")
                    raise
            except sqlite3.OperationalError as err:
                mapped = _mapped(err, self.path)
                if mapped is not None:
                    raise mapped from err
                raise

    def check_writable(self) -> None:
        """Take the write lock and let it go (an empty transaction): raises what a write
        would (:class:`StorageError`, :class:`StoreFullError`), writing nothing."""
        with self._transaction():
            pass

    def put(self, clip: Clip) -> None:
        with self._transaction() as db:
            db.execute(_PUT, _row(clip))

    def put_many(self, clips: Iterable[Clip]) -> None:
        with self._transaction() as db:
            db.executemany(_PUT, [_row(c) for c in clips])

    def set_times(self, clip_id: str, start: float, end: float | None) -> bool:
        """Give a time-uncertain clip its true times and mark them certain; only the time
        columns change (a keep set meanwhile stays). False if the row is gone or certain."""
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE clips SET start = ?, end = ?, time_uncertain = 0"
                " WHERE id = ? AND time_uncertain = 1",
                (start, end, clip_id),
            )
        return cursor.rowcount == 1

    def uncertain(self) -> list[Clip]:
        """Every time-uncertain clip, in any state, oldest stamp first."""
        with self._lock:
            rows = self._db.execute(f"{_SELECT} WHERE time_uncertain = 1 ORDER BY start, id")
            return [_clip(row) for row in rows]

    def remove(self, clip_id: str) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM clips WHERE id = ?", (clip_id,))

    def get(self, clip_id: str) -> Clip | None:
        with self._lock:
            row = self._db.execute(
                f"{_SELECT} WHERE id = ?",
                (clip_id,),
            ).fetchone()
        return _clip(row) if row else None

    def list(
        self,
        *,
        limit: int | None = None,
        before: float | None = None,
        since: float | None = None,
        trigger: str | None = None,
        states: tuple[str, ...] = ("complete", "partial"),
    ) -> list[Clip]:
        """Clips newest first, filtered by start time window, trigger and state."""
        where = [f"state IN ({','.join('?' * len(states))})"]
        args: list[object] = list(states)
        if before is not None:
            where.append("start < ?")
            args.append(before)
        if since is not None:
            where.append("start >= ?")
            args.append(since)
        if trigger is not None:
            where.append("trigger = ?")
            args.append(trigger)
        # Fixed fragments only; every value is a ? parameter.
        sql = f"{_SELECT} WHERE {' AND '.join(where)} ORDER BY start DESC, id"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        with self._lock:
            return [_clip(row) for row in self._db.execute(sql, args)]


def _row(c: Clip) -> tuple:
    flags = (int(c.keep), c.state, int(c.time_uncertain))
    return (c.id, c.start, c.end, c.trigger, c.bytes, *flags, c.boot_id, c.boot_start)


def _clip(row: tuple) -> Clip:
    return Clip(
        row[0], row[1], row[2], row[3], row[4], bool(row[5]), row[6], bool(row[7]), *row[8:]
    )
