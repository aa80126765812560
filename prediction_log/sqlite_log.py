"""The default prediction log: one SQLite file per replica, shared by its workers (WAL).

Its cost is bounded twice: blocks older than the retention are deleted, and while the pages
in use exceed the size cap the oldest blocks are deleted in bulk. Deleted pages go to SQLite's
free list and are reused by later inserts, so the file stops growing at about the cap without
a VACUUM (which would rewrite the whole file under an exclusive lock).
"""

from __future__ import annotations

import asyncio
import math
import os
import sqlite3
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from prediction_log.buffered import BufferedLog, LogObserver
from prediction_log.records import (
    FeedbackResult,
    PredictionBlock,
    PredictionRecord,
    joined,
    split_prediction_id,
    stored_record,
)
from prediction_log.sqlite_schema import BLOCKS, INSERT_BLOCK, LABELS, Transaction, connect

# Retention is enforced at most this often (a range delete on the created_at index).
PRUNE_EVERY_S = 60.0
# Over the size cap, delete down to this fraction of it, so the next few writes do not each
# trigger another eviction.
EVICT_TO_FRACTION = 0.9
EVICT_FLOOR_FRACTION = 0.5
"""Largest share of the cap one insert may take (so eviction keeps at least the rest)."""
# Bytes a block costs beyond its arrays and ids (key, columns, two index entries), for the room
# to make before an insert; measured ~150 (docs/prediction-log.md).
BLOCK_OVERHEAD_BYTES = 200
MIN_FREE_BYTES = 64 * 1024
"""Below this much room on the log's filesystem the log says ``degraded`` (and, shared by
several workers, feedback for an id not found is "retry later"): the next write may fail, and
another worker's may have failed already (its queue is not visible here)."""


def unusable_reason(path: Path, timeout_s: float = 1.0) -> str | None:
    """Why ``path`` cannot hold the log (not creatable, read-only, not SQLite), or None.

    Opens it as the log would and takes the write lock once; a lock held by someone else is
    fine (it is a moment's contention, not a wrong path).
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = connect(path, timeout_s)
        try:
            db.execute("BEGIN IMMEDIATE")
            db.execute("ROLLBACK")
        finally:
            db.close()
    except sqlite3.OperationalError as exc:
        if getattr(exc, "sqlite_errorname", "") in ("SQLITE_BUSY", "SQLITE_LOCKED"):
            return None
        return f"{type(exc).__name__}: {exc}"
    except (OSError, sqlite3.Error) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


class SQLitePredictionLog(BufferedLog):
    """Predictions in one SQLite file, bounded by retention and by size (``max_bytes``)."""

    backend = "sqlite"
    store_errors = (sqlite3.Error, OSError)

    def __init__(
        self,
        path: Path,
        retention_s: float,
        *,
        max_bytes: int | None = None,
        max_queue_rows: int = 100_000,
        sample_rate: float = 1.0,
        timeout_s: float = 1.0,
        flush_interval_s: float = 0.1,
        observer: LogObserver | None = None,
        shared: bool = True,
    ) -> None:
        """``shared``: other workers write to the same file (``BufferedLog.shared_store``);
        with one worker a miss is always "unknown" (it knows every row it has not written)."""
        super().__init__(
            max_queue_rows=max_queue_rows,
            sample_rate=sample_rate,
            flush_interval_s=flush_interval_s,
            observer=observer,
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        self.shared_store = shared
        self._path = path
        self._retention_s = retention_s
        self._max_bytes = max_bytes
        self._used_bytes = 0
        self._last_prune = 0.0
        # One thread owns the connection: sqlite3 connections are not shared across threads.
        self._io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="prediction-log")
        self._db = self._io.submit(connect, path, timeout_s).result()
        # Fixed once the file exists (only a VACUUM could change it, and the log never runs one).
        self._page_size = self._io.submit(self._read_page_size).result()

    def _read_page_size(self) -> int:
        (page_size,) = self._db.execute("PRAGMA page_size").fetchone()
        return int(page_size)

    async def _write(self, blocks: list[PredictionBlock]) -> None:
        await asyncio.get_running_loop().run_in_executor(self._io, self._write_now, blocks)

    def _write_now(self, blocks: list[PredictionBlock]) -> None:
        rows = [_stored_row(b) for b in blocks]
        for part, incoming in self._parts(rows):
            if self._max_bytes is not None:
                # Room is made before the insert, so the file never outgrows the cap by a write;
                # parts of at most half the cap never evict more than half of what is kept.
                self._used_bytes = self._pages_in_use()
                if self._used_bytes + incoming > self._max_bytes:
                    self._evict_oldest(
                        min(self._max_bytes * EVICT_TO_FRACTION, self._max_bytes - incoming)
                    )
            with Transaction(self._db):  # one commit per part, not one per block
                self._db.executemany(INSERT_BLOCK, part)
        now = time.time()
        if now - self._last_prune > PRUNE_EVERY_S:
            self._last_prune = now
            self._prune_expired(now - self._retention_s)
        self._used_bytes = self._pages_in_use()
        self._observer.size_bytes(self._used_bytes)

    def _parts(self, rows: list[tuple[Any, ...]]) -> Iterator[tuple[list[tuple[Any, ...]], int]]:
        """``rows`` in consecutive parts of at most half the size cap (one part without a cap),
        each with its stored size: a backlog written after an outage, or a small cap, would
        otherwise make room for itself by evicting every prediction still awaiting its label."""
        budget = None if self._max_bytes is None else self._max_bytes * EVICT_FLOOR_FRACTION
        part: list[tuple[Any, ...]] = []
        size = 0
        for row in rows:
            row_size = sum(_stored_bytes(row[i]) for i in (4, 5, 6, 10)) + BLOCK_OVERHEAD_BYTES
            if part and budget is not None and size + row_size > budget:
                yield part, size
                part, size = [], 0
            part.append(row)
            size += row_size
        if part:
            yield part, size

    def _prune_expired(self, cutoff: float) -> None:
        with Transaction(self._db):
            (expired,) = self._db.execute(
                f"SELECT coalesce(sum(rows), 0) FROM {BLOCKS} WHERE created_at < ?",
                (cutoff,),
            ).fetchone()
            self._db.execute(f"DELETE FROM {BLOCKS} WHERE created_at < ?", (cutoff,))
            # A label arrives after its prediction: one older than the cutoff has no block left.
            self._db.execute(f"DELETE FROM {LABELS} WHERE feedback_at < ?", (cutoff,))
        if expired:
            self._observer.evicted("retention", expired)

    def _pages_in_use(self) -> int:
        (pages,) = self._db.execute("PRAGMA page_count").fetchone()
        (free,) = self._db.execute("PRAGMA freelist_count").fetchone()
        return int((pages - free) * self._page_size)

    def _evict_oldest(self, target: float) -> None:
        """Delete the oldest blocks until the pages in use fall to ``target`` bytes, estimating
        the share to delete from the average block (a round or two).

        Without zeroing the freed pages (``secure_delete=FAST``): the insert that needed the
        room overwrites them next. Zeroing (the writer's ``ON``, also Debian's build default)
        wrote every freed page to the WAL and then to the file again: at the cap, 10,000-row
        blocks cost 5.3 ms of CPU a write instead of 2.7 (docs/prediction-log.md)."""
        self._db.execute("PRAGMA secure_delete=FAST")
        try:
            evicted = self._evict_rounds(target)
        finally:
            self._db.execute("PRAGMA secure_delete=ON")
        if evicted:
            self._observer.evicted("size_cap", evicted)

    def _evict_rounds(self, target: float) -> int:
        evicted = 0
        while self._used_bytes > max(target, 0):
            with Transaction(self._db):
                (blocks,) = self._db.execute(f"SELECT count(*) FROM {BLOCKS}").fetchone()
                if not blocks:
                    break  # what is left is labels, which retention handles
                share = (self._used_bytes - target) / self._used_bytes
                oldest = f"SELECT rowid, rows FROM {BLOCKS} ORDER BY created_at LIMIT ?"
                limit = max(1, math.ceil(blocks * share))
                (rows,) = self._db.execute(
                    f"SELECT coalesce(sum(rows), 0) FROM ({oldest})", (limit,)
                ).fetchone()
                self._db.execute(
                    f"DELETE FROM {BLOCKS} WHERE rowid IN (SELECT rowid FROM ({oldest}))",
                    (limit,),
                )
            evicted += rows
            self._used_bytes = self._pages_in_use()
        return int(evicted)

    async def _attach(self, prediction_id: str, actual: float) -> FeedbackResult:
        return await asyncio.get_running_loop().run_in_executor(
            self._io, self._attach_now, prediction_id, actual
        )

    def _attach_now(self, prediction_id: str, actual: float) -> FeedbackResult:
        record = self._find(prediction_id)
        if record is None:
            return FeedbackResult("unknown", None, None)
        inserted = self._db.execute(
            f"INSERT OR IGNORE INTO {LABELS} VALUES (?, ?, ?)", (prediction_id, actual, time.time())
        ).rowcount
        if inserted:
            return joined(record, actual, None)
        (stored,) = self._db.execute(
            f"SELECT actual FROM {LABELS} WHERE prediction_id = ?", (prediction_id,)
        ).fetchone()
        return joined(record, actual, stored)

    def _find(self, prediction_id: str) -> PredictionRecord | None:
        located = split_prediction_id(prediction_id)
        if located is None:
            return None
        key, row = located
        found = self._db.execute(
            "SELECT created_at, model_version, rows, features, outputs, shadow_version,"
            f" shadow_outputs, feature_sources FROM {BLOCKS} WHERE block_key = ?",
            (key,),
        ).fetchone()
        return None if found is None else stored_record(prediction_id, row, *found)

    def _store_trouble(self) -> str | None:
        """A full or read-only filesystem under the log (one ``statvfs``, ~2 us)."""
        try:
            fs = os.statvfs(self._path.parent)
        except OSError as exc:
            return f"{type(exc).__name__}: {exc}"
        if fs.f_flag & os.ST_RDONLY:
            return f"the log's filesystem ({self._path.parent}) is read-only"
        free = fs.f_bavail * fs.f_frsize
        if free < MIN_FREE_BYTES:
            return f"the log's filesystem ({self._path.parent}) is full: {free} bytes free"
        return None

    def _details(self) -> dict[str, Any]:
        return {
            "size_mib": round(self._used_bytes / 2**20, 2),
            "max_mib": None if self._max_bytes is None else round(self._max_bytes / 2**20, 2),
        }

    async def _close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._io, self._db.close)
        self._io.shutdown(wait=True)


def _stored_row(block: PredictionBlock) -> tuple[Any, ...]:
    """A block as the values of ``sqlite_schema.BLOCK_COLUMNS``, in order.

    The arrays are bound in their stored form (``records.PredictionBlock.encoded``'s bytes)
    without being copied to ``bytes`` first: SQLite copies them anyway, and the extra copy
    (~0.1 ms for 10,000 rows) held the GIL the event loop waits for."""
    call, shadow, sources = block.call, block.shadow, block.feature_sources
    return (
        block.block_key,
        block.created_at,
        block.model_version,
        len(block),
        _blob(block.features, "<f8"),
        _blob(block.outputs, "<f8"),
        block.entity_ids,
        None if call is None else call.ms,
        None if call is None else call.rows,
        None if shadow is None else shadow.model_version,
        None if shadow is None else _blob(shadow.outputs, "<f8"),
        None if shadow is None else shadow.call.ms,
        None if shadow is None else shadow.call.rows,
        None if sources is None else _blob(sources, "i1"),
    )


def _blob(array: Any, dtype: str) -> np.ndarray | bytes:
    """``array`` as ``dtype``, row-major, for SQLite to bind as a BLOB; an empty one as ``b""``
    (an empty array's buffer may have no address, which would bind NULL)."""
    stored = np.ascontiguousarray(array, dtype=dtype)
    return stored if stored.size else b""


def _stored_bytes(value: Any) -> int:
    """Bytes a bound BLOB value (``bytes``, array, or None) stores."""
    return 0 if value is None else memoryview(value).nbytes
