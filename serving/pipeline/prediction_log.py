"""Record every prediction and join delayed labels (actual delivery times) to it.

``SQLitePredictionLog`` is the default: one file, bounded retention, survives restarts; every
worker of one replica shares it. With several replicas the feedback may reach another pod than
the one that predicted, so clusters use ``RedisPredictionLog`` (shared, TTL-bounded).
Writes are buffered and flushed by a background task every 100 ms, off the request path: a
label sent to *another* replica within that window is still unknown (404, retry later).

The log stores one **block** per request, not one row per prediction: the request's features
and outputs as float64 arrays, under a random block key that is also the first 27 hex digits of
every prediction id of the request (the last 5 are the row). Per-prediction rows cost ~100 us
each in SQLite (a random-key index insert plus JSON), which capped 1000-row batches at ~10k
rows/s; a block costs one insert per request. Labels are few and go to a table of their own.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
import redis.asyncio as aioredis

logger = logging.getLogger(__name__)

FeedbackStatus = Literal["joined", "duplicate", "conflict", "unknown"]

_ROW_DIGITS = 5
MAX_ROWS_PER_BLOCK = 16**_ROW_DIGITS
"""Most predictions one block (one request) can hold: the row is the id's last 5 hex digits."""


def new_prediction_ids(count: int) -> tuple[str, list[str]]:
    """A new block key and ``count`` prediction ids under it, shaped as version-4 UUIDs.

    The key holds 102 random bits (``os.urandom``), so ids stay unguessable; only the request's
    own client, which receives all of them, learns the ids of a block.
    """
    if count > MAX_ROWS_PER_BLOCK:
        raise ValueError(f"at most {MAX_ROWS_PER_BLOCK} predictions per request, got {count}")
    digits = os.urandom(16).hex()
    # Version nibble 4 and the RFC 4122 variant, as uuid4 sets them.
    variant = "89ab"[int(digits[16], 16) & 3]
    key = f"{digits[:8]}-{digits[8:12]}-4{digits[13:16]}-{variant}{digits[17:20]}-{digits[20:27]}"
    return key, [f"{key}{row:05x}" for row in range(count)]


def split_prediction_id(prediction_id: str) -> tuple[str, int] | None:
    """(block key, row) of an id made by :func:`new_prediction_ids`; None if it is not one."""
    key, row = prediction_id[:-_ROW_DIGITS], prediction_id[-_ROW_DIGITS:]
    if len(prediction_id) != 36 or len(key) != 31:
        return None
    try:
        return key, int(row, 16)
    except ValueError:
        return None


@dataclass(frozen=True)
class PredictionRecord:
    """What was predicted, for whom, by which model."""

    prediction_id: str
    created_at: float
    model_version: str
    features: list[float]
    predicted: float
    lower: float
    upper: float


@dataclass(frozen=True)
class PredictionBlock:
    """The predictions of one request, column by column (what the request path hands over)."""

    block_key: str
    created_at: float
    model_version: str
    features: np.ndarray
    """(n, features) model input, in ``FEATURE_NAMES`` order."""
    outputs: np.ndarray
    """(n, 3): point, lower, upper."""

    def __len__(self) -> int:
        return int(self.features.shape[0])

    def encoded(self) -> tuple[bytes, bytes]:
        """Features and outputs as little-endian float64 bytes, row-major (the stored form)."""
        return (
            np.ascontiguousarray(self.features, dtype="<f8").tobytes(),
            np.ascontiguousarray(self.outputs, dtype="<f8").tobytes(),
        )


def _stored_record(
    prediction_id: str,
    row: int,
    created_at: float,
    model_version: str,
    rows: int,
    features: bytes,
    outputs: bytes,
) -> PredictionRecord | None:
    if not 0 <= row < rows:
        return None
    feature_row = np.frombuffer(features, dtype="<f8").reshape(rows, -1)[row].tolist()
    point, lower, upper = np.frombuffer(outputs, dtype="<f8").reshape(rows, 3)[row].tolist()
    return PredictionRecord(
        prediction_id, created_at, model_version, feature_row, point, lower, upper
    )


@dataclass(frozen=True)
class FeedbackResult:
    """Outcome of joining one label; ``record`` is None when the id is unknown."""

    status: FeedbackStatus
    record: PredictionRecord | None
    actual: float | None


def _joined(record: PredictionRecord, actual: float, stored: float | None) -> FeedbackResult:
    """The outcome once the label store answered: ``stored`` is None if ours was the first."""
    if stored is None:
        return FeedbackResult("joined", record, actual)
    return FeedbackResult("duplicate" if stored == actual else "conflict", record, stored)


class PredictionLog(Protocol):
    """Where predictions wait for their labels."""

    backend: str

    def append(self, block: PredictionBlock) -> None:
        """Queue one request's predictions for writing (non-blocking)."""
        ...

    async def flush(self) -> None:
        """Write everything queued so far."""
        ...

    async def attach_feedback(self, prediction_id: str, actual: float) -> FeedbackResult:
        """Join ``actual`` to its prediction, at most once."""
        ...

    async def close(self) -> None:
        """Flush and release resources."""
        ...


class _Buffered:
    """Shared buffering: requests append, a background task flushes every ``interval_s``."""

    def __init__(self, interval_s: float) -> None:
        self._pending: list[PredictionBlock] = []
        self._interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    def append(self, block: PredictionBlock) -> None:
        self._pending.append(block)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._flush_forever())

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                await self.flush()
            except Exception:  # keep flushing later; a lost write must not kill the loop
                logger.exception("prediction log flush failed")

    def _take(self) -> list[PredictionBlock]:
        taken, self._pending = self._pending, []
        return taken

    async def flush(self) -> None:
        raise NotImplementedError

    async def _stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        await self.flush()


class SQLitePredictionLog(_Buffered):
    """Predictions in one SQLite file (WAL, so several workers can share it)."""

    backend = "sqlite"

    def __init__(self, path: Path, retention_s: float, flush_interval_s: float = 0.1) -> None:
        super().__init__(flush_interval_s)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._retention_s = retention_s
        self._last_prune = 0.0
        # One thread owns the connection: sqlite3 connections are not shared across threads.
        self._io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="prediction-log")
        self._db = self._io.submit(self._connect, path).result()
        self._legacy = self._io.submit(self._has_legacy_table).result()

    @staticmethod
    def _connect(path: Path) -> sqlite3.Connection:
        db = sqlite3.connect(path, timeout=10, isolation_level=None, check_same_thread=True)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute(
            """CREATE TABLE IF NOT EXISTS prediction_blocks (
                block_key TEXT PRIMARY KEY, created_at REAL NOT NULL, model_version TEXT NOT NULL,
                rows INTEGER NOT NULL, features BLOB NOT NULL, outputs BLOB NOT NULL)"""
        )
        db.execute(
            "CREATE INDEX IF NOT EXISTS prediction_blocks_created ON prediction_blocks(created_at)"
        )
        db.execute(
            """CREATE TABLE IF NOT EXISTS feedback (
                prediction_id TEXT PRIMARY KEY, actual REAL NOT NULL, feedback_at REAL NOT NULL)"""
        )
        return db

    def _has_legacy_table(self) -> bool:
        # Files written before blocks (one `predictions` row per prediction) keep answering
        # feedback until their rows expire.
        found = self._db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'predictions'"
        ).fetchone()
        return found is not None

    def _write(self, blocks: list[PredictionBlock]) -> None:
        self._db.executemany(
            "INSERT OR IGNORE INTO prediction_blocks VALUES (?, ?, ?, ?, ?, ?)",
            [(b.block_key, b.created_at, b.model_version, len(b), *b.encoded()) for b in blocks],
        )
        now = time.time()
        if now - self._last_prune > 60:
            self._last_prune = now
            cutoff = now - self._retention_s
            self._db.execute("DELETE FROM prediction_blocks WHERE created_at < ?", (cutoff,))
            # A label arrives after its prediction: one older than the cutoff has no block left.
            self._db.execute("DELETE FROM feedback WHERE feedback_at < ?", (cutoff,))
            if self._legacy:
                self._db.execute("DELETE FROM predictions WHERE created_at < ?", (cutoff,))

    async def flush(self) -> None:
        blocks = self._take()
        if blocks:
            await asyncio.get_running_loop().run_in_executor(self._io, self._write, blocks)

    def _attach(self, prediction_id: str, actual: float) -> FeedbackResult:
        record = self._find(prediction_id)
        if record is None:
            return self._attach_legacy(prediction_id, actual)
        inserted = self._db.execute(
            "INSERT OR IGNORE INTO feedback VALUES (?, ?, ?)", (prediction_id, actual, time.time())
        ).rowcount
        if inserted:
            return _joined(record, actual, None)
        (stored,) = self._db.execute(
            "SELECT actual FROM feedback WHERE prediction_id = ?", (prediction_id,)
        ).fetchone()
        return _joined(record, actual, stored)

    def _find(self, prediction_id: str) -> PredictionRecord | None:
        located = split_prediction_id(prediction_id)
        if located is None:
            return None
        key, row = located
        found = self._db.execute(
            "SELECT created_at, model_version, rows, features, outputs FROM prediction_blocks"
            " WHERE block_key = ?",
            (key,),
        ).fetchone()
        return None if found is None else _stored_record(prediction_id, row, *found)

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
        return _joined(record, actual, None if updated else row[7])

    async def attach_feedback(self, prediction_id: str, actual: float) -> FeedbackResult:
        await self.flush()  # this worker's own recent predictions must be findable
        return await asyncio.get_running_loop().run_in_executor(
            self._io, self._attach, prediction_id, actual
        )

    async def close(self) -> None:
        await self._stop()
        await asyncio.get_running_loop().run_in_executor(self._io, self._db.close)
        self._io.shutdown(wait=True)


class RedisPredictionLog(_Buffered):
    """Prediction blocks as Redis hashes with a TTL, shared by every replica; a label is the
    block's field ``actual:<row>``, set with HSETNX so exactly one replica joins it."""

    backend = "redis"
    _PREFIX = "delivery_eta:block:"
    _LEGACY_PREFIX = "delivery_eta:prediction:"  # one hash per prediction, before blocks

    def __init__(
        self,
        redis_url: str,
        retention_s: float,
        timeout_s: float = 1.0,
        flush_interval_s: float = 0.1,
    ) -> None:
        super().__init__(flush_interval_s)
        self._ttl = max(int(retention_s), 1)
        self._client = aioredis.Redis.from_url(
            redis_url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
        )

    async def flush(self) -> None:
        blocks = self._take()
        if not blocks:
            return
        async with self._client.pipeline(transaction=False) as pipe:
            for block in blocks:
                key = self._PREFIX + block.block_key
                features, outputs = block.encoded()
                pipe.hset(
                    key,
                    mapping={
                        "created_at": block.created_at,
                        "model_version": block.model_version,
                        "rows": len(block),
                        "features": features,
                        "outputs": outputs,
                    },
                )
                pipe.expire(key, self._ttl)
            await pipe.execute()

    async def attach_feedback(self, prediction_id: str, actual: float) -> FeedbackResult:
        await self.flush()
        located = split_prediction_id(prediction_id)
        if located is None:
            return FeedbackResult("unknown", None, None)
        block_key, row = located
        key = self._PREFIX + block_key
        fields = ["created_at", "model_version", "rows", "features", "outputs"]
        stored: list[bytes | None] = await self._client.hmget(key, fields)  # type: ignore[misc]
        if stored[0] is None:
            return await self._attach_legacy(prediction_id, actual)
        created_at, model_version, rows, features, outputs = stored
        assert (
            created_at and model_version and rows and features is not None and outputs is not None
        )
        record = _stored_record(
            prediction_id,
            row,
            float(created_at),
            model_version.decode(),
            int(rows),
            features,
            outputs,
        )
        if record is None:
            return FeedbackResult("unknown", None, None)
        label = f"actual:{row}"
        # HSETNX makes the join atomic across replicas: exactly one caller sees "joined".
        if await self._client.hsetnx(key, label, repr(actual)):  # type: ignore[misc]
            return _joined(record, actual, None)
        earlier = await self._client.hget(key, label)  # type: ignore[misc]
        return _joined(record, actual, float(earlier))

    async def _attach_legacy(self, prediction_id: str, actual: float) -> FeedbackResult:
        key = self._LEGACY_PREFIX + prediction_id
        if not await self._client.exists(key):
            return FeedbackResult("unknown", None, None)
        joined = await self._client.hsetnx(key, "actual", repr(actual))  # type: ignore[misc]
        stored_fields: dict[bytes, bytes] = await self._client.hgetall(key)  # type: ignore[misc]
        raw = {k.decode(): v.decode() for k, v in stored_fields.items()}
        record = PredictionRecord(
            prediction_id,
            float(raw["created_at"]),
            raw["model_version"],
            json.loads(raw["features"]),
            float(raw["predicted"]),
            float(raw["lower"]),
            float(raw["upper"]),
        )
        return _joined(record, actual, None if joined else float(raw["actual"]))

    async def close(self) -> None:
        try:
            await self._stop()
        finally:
            await self._client.aclose()
