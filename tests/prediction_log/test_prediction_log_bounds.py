"""The prediction log's bounds without a server: the queue cap, retried writes, sampling, the
SQLite size cap, failure reporting and the start-up path check."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import sqlite3
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import redis

from prediction_log import (
    PredictionBlock,
    PredictionLogUnavailable,
    RedisPredictionLog,
    SQLitePredictionLog,
    encode_entity_ids,
    new_block_key,
    new_prediction_ids,
    unusable_reason,
)
from prediction_log.buffered import sampled_in


class Recorder:
    """A LogObserver that remembers what it was told."""

    def __init__(self) -> None:
        self.outcomes: Counter[str] = Counter()
        self.evictions: Counter[str] = Counter()
        self.queue: list[int] = []
        self.up: list[bool] = []
        self.size = 0

    def records(self, outcome: str, rows: int) -> None:
        self.outcomes[outcome] += rows

    def queue_rows(self, rows: int) -> None:
        self.queue.append(rows)

    def store_up(self, up: bool) -> None:
        self.up.append(up)

    def evicted(self, reason: str, rows: int) -> None:
        self.evictions[reason] += rows

    def size_bytes(self, size: int) -> None:
        self.size = size


def _block(rows: int, id_chars: int = 6) -> tuple[PredictionBlock, list[str]]:
    """A block as the service logs it, entity ids of ``id_chars`` characters included."""
    key, ids = new_prediction_ids(rows)
    features = np.tile([3.0, 1.0, 25.0, 30.0, 31.0], (rows, 1))
    outputs = np.tile([20.0, 15.0, 30.0], (rows, 1))
    restaurants = [f"r_{i:0{id_chars - 2}d}" for i in range(rows)]
    drivers = [f"d_{i:0{id_chars - 2}d}" for i in range(rows)]
    entity_ids = encode_entity_ids([restaurants, drivers])
    return PredictionBlock(key, time.time(), "delivery_eta:v1", features, outputs, entity_ids), ids


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Another connection holding the file's write lock."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        db.execute("ROLLBACK")
        db.close()


def _log(path: Path, observer: Recorder, **bounds: float) -> SQLitePredictionLog:
    # One worker's file: a miss is "unknown" at once (shared, an id made moments ago is "not
    # yet": tests/prediction_log/test_prediction_log.py).
    return SQLitePredictionLog(
        path, 3600, timeout_s=0.05, observer=observer, shared=False, **bounds
    )  # type: ignore[arg-type]


async def test_a_stuck_store_fills_the_queue_to_its_cap_then_drops_and_counts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path, seen = tmp_path / "p.sqlite3", Recorder()
    log = _log(path, seen, max_queue_rows=5000)
    blocks = [_block(1000) for _ in range(30)]
    kept = [ids for _, block_ids in blocks[:5] for ids in block_ids]  # the first 5 fit
    try:
        with _locked(path), caplog.at_level(logging.WARNING):
            for block, _ in blocks:
                log.append(block)
                await log.flush()  # fails: the blocks stay queued
            assert log.queue_rows == 5000 and max(seen.queue) == 5000
            assert seen.outcomes == {"dropped_queue_full": 25_000}
            assert log.state == "failing" and seen.up == [True, False]
            assert "database is locked" in (log.status()["error"] or "")
            with pytest.raises(PredictionLogUnavailable):
                await log.attach_feedback(kept[0], 30.0)
        overflow = [r for r in caplog.records if "queue full" in r.getMessage()]
        failing = [r for r in caplog.records if "queued for retry" in r.getMessage()]
        assert len(overflow) == 1 and len(failing) == 1  # rate-limited, not one per event
        await log.flush()  # the lock is gone: the queued blocks go out
        assert log.queue_rows == 0 and log.state == "ready" and seen.up[-1] is True
        assert seen.outcomes["written"] == 5000 and len(kept) == 5000
        assert (await log.attach_feedback(kept[0], 30.0)).status == "joined"
        assert (await log.attach_feedback(kept[-1], 30.0)).status == "joined"
    finally:
        await log.close()


async def test_a_block_that_breaks_the_writer_is_dropped_not_retried_for_ever(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A bug (not a store failure) retried with the same block at the head of the queue would
    # keep the log failing and drop every later prediction.
    path, seen = tmp_path / "p.sqlite3", Recorder()
    log = _log(path, seen)
    bad, _ = _block(2)
    original = SQLitePredictionLog._write

    async def write(self: SQLitePredictionLog, blocks: list[PredictionBlock]) -> None:
        if any(b is bad for b in blocks):
            raise ValueError("cannot encode this block")
        await original(self, blocks)

    monkeypatch.setattr(SQLitePredictionLog, "_write", write)
    try:
        log.append(bad)
        await log.flush()
        good, ids = _block(3)
        log.append(good)
        await log.flush()
        assert seen.outcomes == {"dropped_write_failed": 2, "written": 3}
        assert log.state == "ready" and log.queue_rows == 0
        assert (await log.attach_feedback(ids[0], 30.0)).status == "joined"
    finally:
        await log.close()


async def test_feedback_while_the_store_fails_answers_at_once_and_recovers_with_it(
    tmp_path: Path,
) -> None:
    path, seen = tmp_path / "p.sqlite3", Recorder()
    log = _log(path, seen)
    block, ids = _block(1)
    try:
        with _locked(path):
            log.append(block)
            await log.flush()
            assert log.state == "failing"
            started = time.monotonic()
            for _ in range(20):  # no write attempt (each waits for the busy timeout) per call
                with pytest.raises(PredictionLogUnavailable):
                    await log.attach_feedback(ids[0], 30.0)
            assert time.monotonic() - started < 0.5
        await log.flush()
        assert (await log.attach_feedback(ids[0], 30.0)).status == "joined"
    finally:
        await log.close()


async def test_what_the_store_still_refuses_at_shutdown_is_counted_as_lost(
    tmp_path: Path,
) -> None:
    path, seen = tmp_path / "p.sqlite3", Recorder()
    log = _log(path, seen)
    with _locked(path):
        log.append(_block(3)[0])
        await log.close()
    assert seen.outcomes == {"dropped_write_failed": 3}


def test_batches_are_sampled_by_their_key_and_single_predictions_never() -> None:
    batches = [_block(2)[0] for _ in range(4000)]
    kept = sum(sampled_in(b, 0.25) for b in batches)
    assert 800 <= kept <= 1200
    assert all(sampled_in(b, 1.0) for b in batches)
    assert not any(sampled_in(b, 0.0) for b in batches)
    assert all(sampled_in(_block(1)[0], 0.0) for _ in range(100))


async def test_sampled_out_batches_are_counted_and_unknown(tmp_path: Path) -> None:
    seen = Recorder()
    log = _log(tmp_path / "p.sqlite3", seen, sample_rate=0.0)
    try:
        batch, batch_ids = _block(10)
        single, single_ids = _block(1)
        log.append(batch)
        log.append(single)
        assert (await log.attach_feedback(batch_ids[0], 30.0)).status == "unknown"
        assert (await log.attach_feedback(single_ids[0], 30.0)).status == "joined"
        assert seen.outcomes == {"sampled_out": 10, "written": 1}
    finally:
        await log.close()


async def test_the_size_cap_evicts_the_oldest_and_the_file_stops_growing(tmp_path: Path) -> None:
    path, seen, cap = tmp_path / "p.sqlite3", Recorder(), 1 << 20
    log = _log(path, seen, max_bytes=cap)
    sizes, ids = [], []
    try:
        for _ in range(12):
            for _ in range(10):  # 10,000 rows, ~0.65 MB of floats: 7.8 MB in all, 7.5x the cap
                block, block_ids = _block(1000)
                log.append(block)
                ids.append(block_ids[0])
            await log.flush()
            sizes.append(path.stat().st_size)
        assert max(sizes) <= cap * 1.1, sizes
        # Freed pages are reused: the second half of the flood adds nothing to the file.
        assert sizes[-1] <= max(sizes[:6]), sizes
        assert seen.size <= cap and seen.evictions["size_cap"] >= 120_000 - 20_000
        assert log.status()["max_mib"] == 1.0
        assert (await log.attach_feedback(ids[-1], 30.0)).status == "joined"
        assert (await log.attach_feedback(ids[0], 30.0)).status == "unknown"
    finally:
        await log.close()


async def test_eviction_skips_zeroing_freed_pages_but_expired_blocks_leave_no_trace(
    tmp_path: Path,
) -> None:
    # Evicted pages are left for the next insert to overwrite (zeroing them doubled a write's
    # CPU at the cap); the connection zeroes again afterwards, so what retention deletes is
    # erased from the file even after an eviction.
    path, seen, cap = tmp_path / "p.sqlite3", Recorder(), 1 << 20
    log = SQLitePredictionLog(path, 60, max_bytes=cap, observer=seen, shared=False)
    marker = 1234.5678125  # a float64 no other block holds
    try:
        for _ in range(3):  # 3 MB through a 1 MiB cap
            for _ in range(5):
                log.append(_block(1000)[0])
            await log.flush()
        assert seen.evictions["size_cap"] > 0
        expired, _ = _block(1000)
        expired.features[:] = marker
        log.append(dataclasses.replace(expired, created_at=time.time() - 3600))
        log._last_prune = 0.0  # prune on this write (at most once a minute otherwise)
        await log.flush()
        assert seen.evictions["retention"] == 1000
    finally:
        await log.close()
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert np.float64(marker).tobytes() * 4 not in path.read_bytes()


async def test_at_a_large_cap_the_wal_stays_within_its_bound_through_evictions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # docs/prediction-log.md promises disk use of about the cap + 8 MiB (the WAL truncated to
    # 4 MiB after checkpoints every 4 MiB). An eviction frees a tenth of the cap in one
    # transaction; had it zeroed the freed pages (Debian's SQLite build does by default), the
    # WAL would take them all: ~13 MiB at this 128 MiB cap, 54 MiB at the 512 MiB default.
    path, seen, cap = tmp_path / "p.sqlite3", Recorder(), 128 << 20
    wal = path.with_name(path.name + "-wal")
    log = _log(path, seen, max_bytes=cap)
    # The WAL's peak is right after an eviction: the next insert resets it to 4 MiB.
    wal_sizes: list[int] = []
    evict_rounds = log._evict_rounds

    def measured_rounds(target: float) -> int:
        evicted = evict_rounds(target)
        wal_sizes.append(wal.stat().st_size)
        return evicted

    monkeypatch.setattr(log, "_evict_rounds", measured_rounds)
    block, _ = _block(10_000)
    file_sizes = []
    try:
        for _ in range(110):  # ~0.65 MB a block: ~140 MB through the 128 MiB cap
            for _ in range(2):
                log.append(dataclasses.replace(block, block_key=new_block_key(10_000)))
            await log.flush()
            file_sizes.append(path.stat().st_size)
        assert len(wal_sizes) >= 2 and seen.evictions["size_cap"] >= 2 * 10_000 * 10
        assert max(file_sizes) <= cap * 1.1, max(file_sizes)
        # Zeroing the freed pages measured 13-15 MiB here.
        assert max(wal_sizes) <= 8 << 20, wal_sizes
    finally:
        await log.close()


@pytest.mark.parametrize("id_chars", [6, 64])
async def test_a_backlog_larger_than_the_cap_stays_within_it_and_keeps_its_newest(
    tmp_path: Path, id_chars: int
) -> None:
    # One flush of 3-8 MB into a 1 MiB cap (a queue written at once after an outage): written
    # in parts of half the cap, so the file stays within the cap and the newest blocks are kept.
    # With the longest entity ids (64 characters) the ids are 2/3 of a block: a part sized
    # without them would be 1.5x the cap.
    path, seen, cap = tmp_path / "p.sqlite3", Recorder(), 1 << 20
    log = _log(path, seen, max_bytes=cap)
    ids = []
    try:
        for _ in range(40):
            block, block_ids = _block(1000, id_chars)
            log.append(block)
            ids.append(block_ids[0])
        await log.flush()
        assert seen.outcomes["written"] == 40_000 and seen.size <= cap, seen.size
        assert (await log.attach_feedback(ids[-1], 30.0)).status == "joined"
        assert (await log.attach_feedback(ids[0], 30.0)).status == "unknown"
    finally:
        await log.close()


def test_unusable_paths_are_named_and_usable_ones_pass(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    assert "File exists" in (unusable_reason(tmp_path / "file" / "p.sqlite3") or "")
    garbage = tmp_path / "garbage.sqlite3"
    garbage.write_bytes(b"not a database, just bytes\n" * 200)
    assert "not a database" in (unusable_reason(garbage) or "")
    fresh = tmp_path / "new" / "dir" / "p.sqlite3"
    assert unusable_reason(fresh) is None and fresh.exists()
    with _locked(fresh):  # someone else's transaction is contention, not a bad path
        assert unusable_reason(fresh, timeout_s=0.05) is None


@pytest.mark.redis
async def test_the_redis_log_uses_its_prefix_and_answers_unavailable_when_down(
    redis_server,  # type: ignore[no-untyped-def]
) -> None:
    seen = Recorder()
    log = RedisPredictionLog(
        redis_server.url, 3600, key_prefix="eta_log:", timeout_s=0.2, observer=seen
    )
    block, ids = _block(2)
    try:
        log.append(block)
        await log.flush()
        client = redis.Redis.from_url(redis_server.url)
        assert client.keys("*") == [f"eta_log:{block.block_key[22:]}".encode()]
        client.close()
        redis_server.stop()
        waiting, waiting_ids = _block(1)
        log.append(waiting)
        with pytest.raises(PredictionLogUnavailable):
            await log.attach_feedback(ids[0], 30.0)
        assert log.status()["state"] == "failing" and log.queue_rows == 1
        redis_server.start()  # back, empty: the queued block is written on the next flush
        await log.flush()
        assert (await log.attach_feedback(waiting_ids[0], 30.0)).status == "joined"
        assert seen.outcomes == {"written": 3}
    finally:
        await log.close()
