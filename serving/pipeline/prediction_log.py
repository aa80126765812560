"""Record every prediction and join delayed labels (actual delivery times) to it.

``SQLitePredictionLog`` is the default: one file, bounded retention, survives restarts; every
worker of one replica shares it. With several replicas the feedback may reach another pod than
the one that predicted, so clusters use ``RedisPredictionLog`` (shared, TTL-bounded).
Writes are buffered and flushed by a background task every 100 ms, off the request path: a
label sent to *another* replica within that window is still unknown (404, retry later).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import redis.asyncio as aioredis

logger = logging.getLogger(__name__)

FeedbackStatus = Literal["joined", "duplicate", "conflict", "unknown"]


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
class FeedbackResult:
    """Outcome of joining one label; ``record`` is None when the id is unknown."""

    status: FeedbackStatus
    record: PredictionRecord | None
    actual: float | None


class PredictionLog(Protocol):
    """Where predictions wait for their labels."""

    backend: str

    def append(self, records: list[PredictionRecord]) -> None:
        """Queue records for writing (non-blocking)."""
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
        self._pending: list[PredictionRecord] = []
        self._interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    def append(self, records: list[PredictionRecord]) -> None:
        self._pending.extend(records)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._flush_forever())

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                await self.flush()
            except Exception:  # keep flushing later; a lost write must not kill the loop
                logger.exception("prediction log flush failed")

    def _take(self) -> list[PredictionRecord]:
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

    @staticmethod
    def _connect(path: Path) -> sqlite3.Connection:
        db = sqlite3.connect(path, timeout=10, isolation_level=None, check_same_thread=True)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute(
            """CREATE TABLE IF NOT EXISTS predictions (
                prediction_id TEXT PRIMARY KEY, created_at REAL NOT NULL, model_version TEXT NOT NULL,
                features TEXT NOT NULL, predicted REAL NOT NULL, lower REAL NOT NULL,
                upper REAL NOT NULL, actual REAL, feedback_at REAL)"""
        )
        db.execute("CREATE INDEX IF NOT EXISTS predictions_created ON predictions(created_at)")
        return db

    def _write(self, records: list[PredictionRecord]) -> None:
        self._db.executemany(
            "INSERT OR IGNORE INTO predictions VALUES (?, ?, ?, ?, ?, ?, ?, NULL, NULL)",
            [
                (
                    r.prediction_id,
                    r.created_at,
                    r.model_version,
                    json.dumps(r.features),
                    r.predicted,
                    r.lower,
                    r.upper,
                )
                for r in records
            ],
        )
        now = time.time()
        if now - self._last_prune > 60:
            self._last_prune = now
            self._db.execute(
                "DELETE FROM predictions WHERE created_at < ?", (now - self._retention_s,)
            )

    async def flush(self) -> None:
        records = self._take()
        if records:
            await asyncio.get_running_loop().run_in_executor(self._io, self._write, records)

    def _attach(self, prediction_id: str, actual: float) -> FeedbackResult:
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
        if updated:
            return FeedbackResult("joined", record, actual)
        return FeedbackResult("duplicate" if row[7] == actual else "conflict", record, row[7])

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
    """Predictions as Redis hashes with a TTL, shared by every replica."""

    backend = "redis"
    _PREFIX = "delivery_eta:prediction:"

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
        records = self._take()
        if not records:
            return
        async with self._client.pipeline(transaction=False) as pipe:
            for r in records:
                key = self._PREFIX + r.prediction_id
                pipe.hset(
                    key,
                    mapping={
                        "created_at": r.created_at,
                        "model_version": r.model_version,
                        "features": json.dumps(r.features),
                        "predicted": r.predicted,
                        "lower": r.lower,
                        "upper": r.upper,
                    },
                )
                pipe.expire(key, self._ttl)
            await pipe.execute()

    async def attach_feedback(self, prediction_id: str, actual: float) -> FeedbackResult:
        await self.flush()
        key = self._PREFIX + prediction_id
        if not await self._client.exists(key):
            return FeedbackResult("unknown", None, None)
        # HSETNX makes the join atomic across replicas: exactly one caller sees "joined".
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
        stored = float(raw["actual"])
        if joined:
            return FeedbackResult("joined", record, actual)
        return FeedbackResult("duplicate" if stored == actual else "conflict", record, stored)

    async def close(self) -> None:
        try:
            await self._stop()
        finally:
            await self._client.aclose()
