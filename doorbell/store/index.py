"""The clip index: one SQLite table, a cache of what the clip files say.

Plaintext metadata only (id, times, trigger, sizes, keep): the same facts a
directory listing with timestamps would give. Never a frame, never a key.
SQLite runs in WAL mode with ``synchronous=FULL``, so a power cut keeps every
committed row. If the file is missing or corrupt the store rebuilds it from
the clip files (see ``ClipStore``).

Thread ownership: one connection, guarded by ``_lock``; any thread may call.
"""

import errno
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
    state   TEXT NOT NULL           -- recording | partial | complete
);
CREATE INDEX IF NOT EXISTS clips_start ON clips(start);
"""

STATES = ("recording", "partial", "complete")
_SELECT = "SELECT id, start, end, trigger, bytes, keep, state FROM clips"


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


def _full(err: sqlite3.Error) -> bool:
    return getattr(err, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL


@dataclass(frozen=True)
class Clip:
    """One row of the index."""

    id: str
    start: float
    end: float | None
    trigger: str
    bytes: int
    keep: bool
    state: str

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
        except sqlite3.DatabaseError as err:
            self.close()
            raise IndexCorrupt(f"{path}: {err}") from None
        except IndexCorrupt:
            self.close()
            raise

    def close(self) -> None:
        db = getattr(self, "_db", None)  # absent if connecting failed, or closed already
        if db is not None:
            db.close()
            del self._db

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction. Raises :class:`StoreFullError` when the disk is full."""
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
                if _full(err):
                    raise StoreFullError(self.path) from err
                raise

    def put(self, clip: Clip) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO clips (id, start, end, trigger, bytes, keep, state)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    clip.id,
                    clip.start,
                    clip.end,
                    clip.trigger,
                    clip.bytes,
                    int(clip.keep),
                    clip.state,
                ),
            )

    def put_many(self, clips: Iterable[Clip]) -> None:
        with self._transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO clips (id, start, end, trigger, bytes, keep, state)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(c.id, c.start, c.end, c.trigger, c.bytes, int(c.keep), c.state) for c in clips],
            )

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


def _clip(row: tuple) -> Clip:
    return Clip(row[0], row[1], row[2], row[3], row[4], bool(row[5]), row[6])
