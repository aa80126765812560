"""The default prediction log: one SQLite file per replica, shared by its workers (WAL).

Its cost is bounded twice: blocks older than the retention are deleted, and while the pages
in use exceed the size cap the oldest blocks are deleted in bulk. Deleted pages go to SQLite's
free list and are reused by later inserts, so the file stops growing at about the cap without
a VACUUM (which would rewrite the whole file under an exclusive lock).
"""

from __future__ import annotations

import asyncio
import json
import math
import sqlite3
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from serving.pipeline.prediction_log.queue import BufferedLog, LogObserver
from serving.pipeline.prediction_log.records import (
    FeedbackResult,
    PredictionBlock,
    PredictionRecord,
    joined,
    split_prediction_id,
    stored_record,
)

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
# The WAL is truncated back to this after a checkpoint (it otherwise keeps its largest size).
WAL_SIZE_LIMIT_BYTES = 4 * 1024 * 1024


def connect(path: Path, timeout_s: float) -> sqlite3.Connection:
    """Open (creating if needed) the log's file with its schema; waits ``timeout_s`` at most
    for another connection's lock."""
    db = sqlite3.connect(path, timeout=timeout_s, isolation_level=None, check_same_thread=True)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT_BYTES}")
    db.execute(
        """CREATE TABLE IF NOT EXISTS prediction_blocks (
            block_key TEXT PRIMARY KEY, created_at REAL NOT NULL, model_version TEXT NOT NULL,
            rows INTEGER NOT NULL, features BLOB NOT NULL, outputs BLOB NOT NULL)"""
    )
    _add_missing_columns(db)
    db.execute(
        "CREATE INDEX IF NOT EXISTS prediction_blocks_created ON prediction_blocks(created_at)"
    )
    db.execute(
        """CREATE TABLE IF NOT EXISTS feedback (
            prediction_id TEXT PRIMARY KEY, actual REAL NOT NULL, feedback_at REAL NOT NULL)"""
    )
    return db


# Columns added after the first release, in order: files created before one of them get it on
# open (their blocks keep NULL there). entity_ids: retraining (export); the rest: the champion's
# model call and the challenger's outputs and call (serving.pipeline.shadow).
ADDED_COLUMNS: tuple[tuple[str, str], ...] = (
    ("entity_ids", "BLOB"),
    ("inference_ms", "REAL"),
    ("inference_rows", "INTEGER"),
    ("shadow_version", "TEXT"),
    ("shadow_outputs", "BLOB"),
    ("shadow_inference_ms", "REAL"),
    ("shadow_inference_rows", "INTEGER"),
    ("feature_sources", "BLOB"),
)


def block_columns(db: sqlite3.Connection) -> set[str]:
    """The columns the file's ``prediction_blocks`` has (older files lack later ones until the
    service opens them)."""
    return {
        name for (name,) in db.execute("SELECT name FROM pragma_table_info('prediction_blocks')")
    }


def has_entity_ids_column(db: sqlite3.Connection) -> bool:
    """Whether the file's ``prediction_blocks`` has the ``entity_ids`` column."""
    return "entity_ids" in block_columns(db)


def _add_missing_columns(db: sqlite3.Connection) -> None:
    """Add the :data:`ADDED_COLUMNS` a file lacks. Checked again under the write lock: every
    worker opens the file at start-up, at the same time."""
    if block_columns(db) >= {name for name, _ in ADDED_COLUMNS}:
        return
    with _Transaction(db):
        present = block_columns(db)
        for name, kind in ADDED_COLUMNS:
            if name not in present:
                db.execute(f"ALTER TABLE prediction_blocks ADD COLUMN {name} {kind}")


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
    ) -> None:
        super().__init__(
            max_queue_rows=max_queue_rows,
            sample_rate=sample_rate,
            flush_interval_s=flush_interval_s,
            observer=observer,
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path = path
        self._retention_s = retention_s
        self._max_bytes = max_bytes
        self._used_bytes = 0
        self._last_prune = 0.0
        # One thread owns the connection: sqlite3 connections are not shared across threads.
        self._io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="prediction-log")
        self._db = self._io.submit(connect, path, timeout_s).result()
        self._legacy = self._io.submit(self._has_legacy_table).result()

    def _has_legacy_table(self) -> bool:
        # Files written before blocks (one `predictions` row per prediction) keep answering
        # feedback until their rows expire.
        found = self._db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'predictions'"
        ).fetchone()
        return found is not None

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
            with _Transaction(self._db):  # one commit per part, not one per block
                self._db.executemany(_INSERT_BLOCK, part)
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
            row_size = (
                len(row[4])
                + len(row[5])
                + len(row[6] or b"")
                + len(row[10] or b"")
                + BLOCK_OVERHEAD_BYTES
            )
            if part and budget is not None and size + row_size > budget:
                yield part, size
                part, size = [], 0
            part.append(row)
            size += row_size
        if part:
            yield part, size

    def _prune_expired(self, cutoff: float) -> None:
        with _Transaction(self._db):
            (expired,) = self._db.execute(
                "SELECT coalesce(sum(rows), 0) FROM prediction_blocks WHERE created_at < ?",
                (cutoff,),
            ).fetchone()
            self._db.execute("DELETE FROM prediction_blocks WHERE created_at < ?", (cutoff,))
            # A label arrives after its prediction: one older than the cutoff has no block left.
            self._db.execute("DELETE FROM feedback WHERE feedback_at < ?", (cutoff,))
            if self._legacy:
                self._db.execute("DELETE FROM predictions WHERE created_at < ?", (cutoff,))
        if expired:
            self._observer.evicted("retention", expired)

    def _pages_in_use(self) -> int:
        (pages,) = self._db.execute("PRAGMA page_count").fetchone()
        (free,) = self._db.execute("PRAGMA freelist_count").fetchone()
        (page_size,) = self._db.execute("PRAGMA page_size").fetchone()
        return int((pages - free) * page_size)

    def _evict_oldest(self, target: float) -> None:
        """Delete the oldest blocks until the pages in use fall to ``target`` bytes, estimating
        the share to delete from the average block (a round or two)."""
        evicted = 0
        while self._used_bytes > max(target, 0):
            with _Transaction(self._db):
                (blocks,) = self._db.execute("SELECT count(*) FROM prediction_blocks").fetchone()
                if not blocks:
                    break  # what is left is labels and legacy rows, which retention handles
                share = (self._used_bytes - target) / self._used_bytes
                oldest = "SELECT rowid, rows FROM prediction_blocks ORDER BY created_at LIMIT ?"
                limit = max(1, math.ceil(blocks * share))
                (rows,) = self._db.execute(
                    f"SELECT coalesce(sum(rows), 0) FROM ({oldest})", (limit,)
                ).fetchone()
                self._db.execute(
                    f"DELETE FROM prediction_blocks WHERE rowid IN (SELECT rowid FROM ({oldest}))",
                    (limit,),
                )
            evicted += rows
            self._used_bytes = self._pages_in_use()
        if evicted:
            self._observer.evicted("size_cap", evicted)

    async def _attach(self, prediction_id: str, actual: float) -> FeedbackResult:
        return await asyncio.get_running_loop().run_in_executor(
            self._io, self._attach_now, prediction_id, actual
        )

    def _attach_now(self, prediction_id: str, actual: float) -> FeedbackResult:
        record = self._find(prediction_id)
        if record is None:
            return self._attach_legacy(prediction_id, actual)
        inserted = self._db.execute(
            "INSERT OR IGNORE INTO feedback VALUES (?, ?, ?)", (prediction_id, actual, time.time())
        ).rowcount
        if inserted:
            return joined(record, actual, None)
        (stored,) = self._db.execute(
            "SELECT actual FROM feedback WHERE prediction_id = ?", (prediction_id,)
        ).fetchone()
        return joined(record, actual, stored)

    def _find(self, prediction_id: str) -> PredictionRecord | None:
        located = split_prediction_id(prediction_id)
        if located is None:
            return None
        key, row = located
        found = self._db.execute(
            "SELECT created_at, model_version, rows, features, outputs, shadow_version,"
            " shadow_outputs, feature_sources FROM prediction_blocks WHERE block_key = ?",
            (key,),
        ).fetchone()
        return None if found is None else stored_record(prediction_id, row, *found)

    def _attach_legacy(self, prediction_id: str, actual: float) -> FeedbackResult:
        if not self._legacy:
            return FeedbackResult("unknown", None, None)
        updated = self._db.execute(
            "UPDATE predictions SET actual = ?, feedback_at = ? WHERE prediction_id = ? AND actual IS NULL",
            (actual, time.time(), prediction_id),
        ).rowcount
        row = self._db.execute(
            "SELECT prediction_id, created_at, model_version, features, predicted, lower, upper, actual"
            " FROM predictions WHERE prediction_id = ?",
            (prediction_id,),
        ).fetchone()
        if row is None:
            return FeedbackResult("unknown", None, None)
        record = PredictionRecord(
            row[0], row[1], row[2], json.loads(row[3]), row[4], row[5], row[6]
        )
        return joined(record, actual, None if updated else row[7])

    def _details(self) -> dict[str, Any]:
        return {
            "size_mib": round(self._used_bytes / 2**20, 2),
            "max_mib": None if self._max_bytes is None else round(self._max_bytes / 2**20, 2),
        }

    async def _close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._io, self._db.close)
        self._io.shutdown(wait=True)


_INSERT_BLOCK = (
    "INSERT OR IGNORE INTO prediction_blocks (block_key, created_at, model_version, rows,"
    " features, outputs, entity_ids, inference_ms, inference_rows, shadow_version,"
    " shadow_outputs, shadow_inference_ms, shadow_inference_rows, feature_sources)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _stored_row(block: PredictionBlock) -> tuple[Any, ...]:
    """A block as the columns of ``_INSERT_BLOCK``."""
    call, shadow = block.call, block.shadow
    return (
        block.block_key,
        block.created_at,
        block.model_version,
        len(block),
        *block.encoded(),
        block.entity_ids,
        None if call is None else call.ms,
        None if call is None else call.rows,
        None if shadow is None else shadow.model_version,
        None if shadow is None else shadow.encoded(),
        None if shadow is None else shadow.call.ms,
        None if shadow is None else shadow.call.rows,
        None if block.feature_sources is None else _codes(block.feature_sources),
    )


def _codes(sources: Any) -> bytes:
    return np.ascontiguousarray(sources, dtype=np.int8).tobytes()


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, rolled back if the block raises (an autocommit
    connection would otherwise commit every statement of an executemany on its own)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        try:
            if kind is None:
                self._db.execute("COMMIT")  # may fail too (a full disk shows here)
        finally:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
