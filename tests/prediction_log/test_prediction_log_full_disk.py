"""The SQLite log on a full disk, without a server: an injected connection whose writes fail
with SQLITE_FULL (as a full filesystem makes them) while its reads still work.

What must hold: the failure shows (state, error, store-up, one log line per episode), the rows
stay queued within the queue's bound and land when space returns, feedback for a prediction not
recorded yet is "retry later" (503) and for one dropped "never recorded" (410) -- never
"unknown" (404), which stays the answer for an id nobody made.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import prediction_log.buffered as buffered
import prediction_log.sqlite_log as sqlite_log
from prediction_log import (
    PredictionBlock,
    PredictionLogUnavailable,
    PredictionNotRecorded,
    SQLitePredictionLog,
    new_prediction_ids,
)

WRITES = ("INSERT", "DELETE", "COMMIT")


class FullDisk:
    """A sqlite3 connection whose writes fail like a full filesystem's while ``full`` is set
    (or, with ``max_blocks``, only writes of more blocks than that); reads pass through."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self.full = True
        self.max_blocks: int | None = None
        self.failed_writes = 0

    def _refuse(self, sql: str, blocks: int = 1) -> None:
        too_big = self.max_blocks is not None and blocks > self.max_blocks
        if sql.lstrip().upper().startswith(WRITES) and (self.full or too_big):
            self.failed_writes += 1
            raise sqlite3.OperationalError("database or disk is full")

    def execute(self, sql: str, *args: Any) -> Any:
        self._refuse(sql)
        return self._db.execute(sql, *args)

    def executemany(self, sql: str, rows: Any) -> Any:
        rows = list(rows)
        self._refuse(sql, len(rows))
        return self._db.executemany(sql, rows)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)


class Recorder:
    """A LogObserver that remembers what it was told."""

    def __init__(self) -> None:
        self.outcomes: Counter[str] = Counter()
        self.up: list[bool] = []

    def records(self, outcome: str, rows: int) -> None:
        self.outcomes[outcome] += rows

    def queue_rows(self, rows: int) -> None:
        """Not checked here."""

    def store_up(self, up: bool) -> None:
        self.up.append(up)

    def evicted(self, reason: str, rows: int) -> None:
        """Not checked here."""

    def size_bytes(self, size: int) -> None:
        """Not checked here."""


def _block(rows: int = 1) -> tuple[PredictionBlock, list[str]]:
    key, ids = new_prediction_ids(rows)
    features = np.tile([3.0, 1.0, 25.0, 30.0, 31.0], (rows, 1))
    outputs = np.tile([20.0, 15.0, 30.0], (rows, 1))
    return PredictionBlock(key, time.time(), "delivery_eta:v1", features, outputs), ids


def _full_log(
    path: Path, seen: Recorder, *, shared: bool = False, queue_rows: int = 100
) -> tuple[SQLitePredictionLog, FullDisk]:
    log = SQLitePredictionLog(
        path, 3600, max_queue_rows=queue_rows, observer=seen, timeout_s=0.2, shared=shared
    )
    disk = FullDisk(log._db)
    log._db = disk  # type: ignore[assignment]
    return log, disk


async def test_a_full_disk_keeps_rows_queued_says_so_and_they_land_when_space_returns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    seen = Recorder()
    log, disk = _full_log(tmp_path / "p.sqlite3", seen, queue_rows=5)
    made = [_block() for _ in range(8)]  # 5 fit in the queue, 3 are dropped
    try:
        with caplog.at_level(logging.WARNING):
            for block, _ in made:
                log.append(block)
                for _ in range(3):
                    await log.flush()  # every retry fails
            status = log.status()
            assert status["state"] == "failing" and "disk is full" in status["error"]
            assert status["queue_rows"] == 5 and status["dropped_keys"] == 3
            assert seen.up == [True, False]
            assert seen.outcomes == {"dropped_queue_full": 3}
            queued, dropped = made[0][1][0], made[-1][1][0]
            with pytest.raises(PredictionLogUnavailable, match="disk is full"):
                await log.attach_feedback(queued, 30.0)
            with pytest.raises(PredictionNotRecorded, match="never recorded"):
                await log.attach_feedback(dropped, 30.0)
            # One worker knows every row it has not written: an id it never made is unknown.
            never_made = new_prediction_ids(1)[1][0]
            assert (await log.attach_feedback(never_made, 30.0)).status == "unknown"
            assert log.state == "failing"  # a lookup that worked does not hide the failing writes

            disk.full = False
            await log.flush()
        assert log.status()["state"] == "ready" and log.status()["error"] is None
        assert seen.up == [True, False, True]
        assert seen.outcomes == {"dropped_queue_full": 3, "written": 5}
        assert [(await log.attach_feedback(ids[0], 30.0)).status for _, ids in made[:5]] == [
            "joined"
        ] * 5
        with pytest.raises(PredictionNotRecorded):  # still not "unknown" after the recovery
            await log.attach_feedback(dropped, 30.0)
        lines = [r.getMessage() for r in caplog.records]
        # One line when the episode starts and one when it ends, not one per failed retry.
        assert disk.failed_writes >= 20
        assert sum("failing" in line and "disk is full" in line for line in lines) == 1
        recovered = [line for line in lines if "recovered after" in line]
        assert len(recovered) == 1 and "3 rows were dropped" in recovered[0], recovered
    finally:
        await log.close()


async def test_with_workers_sharing_the_file_a_miss_on_a_failing_store_is_retry_later(
    tmp_path: Path,
) -> None:
    log, disk = _full_log(tmp_path / "p.sqlite3", Recorder(), shared=True)
    try:
        log.append(_block()[0])
        await log.flush()
        # Not this worker's, maybe another's still queued: "unknown" could be a lie.
        with pytest.raises(PredictionLogUnavailable, match="another worker"):
            await log.attach_feedback(new_prediction_ids(1)[1][0], 30.0)
        disk.full = False
        await log.flush()
        assert (await log.attach_feedback(new_prediction_ids(1)[1][0], 30.0)).status == "unknown"
    finally:
        await log.close()


async def test_a_full_filesystem_shows_as_degraded_before_any_write_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = SQLitePredictionLog(tmp_path / "p.sqlite3", 3600, shared=True)
    try:
        assert log.status()["state"] == "ready"
        # Any real filesystem has less free space than this: the log's statvfs check says full.
        monkeypatch.setattr(sqlite_log, "MIN_FREE_BYTES", 2**62)
        status = log.status()
        assert status["state"] == "degraded" and "is full" in status["error"], status
        with pytest.raises(PredictionLogUnavailable, match="is full"):
            await log.attach_feedback(new_prediction_ids(1)[1][0], 30.0)
    finally:
        await log.close()


async def test_after_failed_writes_smaller_parts_of_the_backlog_go_through(
    tmp_path: Path,
) -> None:
    seen = Recorder()
    log, disk = _full_log(tmp_path / "p.sqlite3", seen)
    made = [_block() for _ in range(12)]
    try:
        for block, _ in made:
            log.append(block)
        disk.full, disk.max_blocks = False, 3  # room again, but for 3 blocks a write at most
        for _ in range(6):
            await log.flush()
        assert log.status()["state"] == "ready" and log.queue_rows == 0
        assert seen.outcomes == {"written": 12}
        assert (await log.attach_feedback(made[-1][1][0], 30.0)).status == "joined"
    finally:
        await log.close()


async def test_the_dropped_keys_kept_are_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(buffered, "DROPPED_KEYS_KEPT", 3)
    log, _ = _full_log(tmp_path / "p.sqlite3", Recorder(), queue_rows=1)
    made = [_block() for _ in range(50)]
    try:
        for block, _ in made:
            log.append(block)
        assert log.status()["dropped_keys"] == 3
        with pytest.raises(PredictionNotRecorded):
            await log.attach_feedback(made[-1][1][0], 30.0)
        # The oldest dropped are forgotten: "unknown", as an expired id would be.
        assert (await log.attach_feedback(made[1][1][0], 30.0)).status == "unknown"
    finally:
        await log.close()
