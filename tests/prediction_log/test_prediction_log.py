"""Prediction logs: labels join once, survive restarts, and are shared across Redis clients;
one block per request, ids that name their block."""

import asyncio
import dataclasses
import sqlite3
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import redis

from prediction_log import (
    MAX_ROWS_PER_BLOCK,
    ModelCall,
    PredictionBlock,
    PredictionIds,
    PredictionLogUnavailable,
    RedisPredictionLog,
    ShadowPrediction,
    ShadowScores,
    SQLitePredictionLog,
    new_block_key,
    new_prediction_ids,
    split_prediction_id,
)
from prediction_log.records import made_moments_ago
from prediction_log.redis_format import block_location, unpack_block, version_crc
from prediction_log.sqlite_schema import OutdatedLogFile


def _block(rows: int = 2, created_at: float | None = None) -> tuple[PredictionBlock, list[str]]:
    """One request's predictions: row i has distance i + 1 and point prediction 20 + i."""
    # The key's time slot says when it was made, as the service's would.
    key, ids = new_prediction_ids(rows, now=created_at)
    features = np.array([[i + 1.0, 1.0, 25.0, 30.0, 31.0] for i in range(rows)])
    outputs = np.array([[20.0 + i, 15.0 + i, 30.0 + i] for i in range(rows)])
    return PredictionBlock(
        key, created_at or time.time(), "delivery_eta:v1", features, outputs
    ), ids


def test_prediction_ids_are_random_uuid4s_that_name_their_block_and_row() -> None:
    key, ids = new_prediction_ids(3000)
    assert len(set(ids)) == 3000
    parsed = [uuid.UUID(i) for i in ids]
    assert all(p.version == 4 and p.variant == uuid.RFC_4122 for p in parsed)
    assert [str(p) for p in parsed] == ids
    assert [split_prediction_id(i) for i in ids] == [(key, row) for row in range(3000)]
    assert len({new_prediction_ids(1)[0] for _ in range(1000)}) == 1000
    assert new_prediction_ids(0)[1] == []
    with pytest.raises(ValueError, match="at most"):
        new_prediction_ids(MAX_ROWS_PER_BLOCK + 1)
    assert split_prediction_id("not-an-id") is None
    assert split_prediction_id(ids[0][:-5] + "zzzzz") is None


@pytest.mark.parametrize("rows", [0, 1, 16, 17, 4096, 70_000])
def test_a_blocks_ids_are_the_same_however_they_are_asked_for(rows: int) -> None:
    key = new_block_key(rows)
    ids = PredictionIds(key, rows)
    formatted = [f"{key}{row:05x}" for row in range(rows)]  # the ids' definition
    assert ids.tolist() == list(ids) == ids[:] == formatted
    assert len(ids) == rows
    assert bytes(ids.ascii_table()) == "".join(formatted).encode()
    if rows:
        assert ids[0] == formatted[0] and ids[-1] == formatted[-1]
        assert split_prediction_id(ids[-1]) == (key, rows - 1)
    with pytest.raises(IndexError):
        ids[rows]


@pytest.mark.parametrize("rows", [0, 1, 3])
async def test_sqlite_stores_any_array_layout_as_its_encoded_bytes(
    tmp_path: Path, rows: int
) -> None:
    # The writer binds the arrays without copying them to bytes: a float32, Fortran-ordered or
    # sliced array must still be stored as the float64 row-major bytes encoded() gives.
    features = np.asfortranarray(np.arange(rows * 5, dtype=np.float32).reshape(rows, 5))
    outputs = np.arange(rows * 6, dtype=np.float64).reshape(rows, 6)[:, ::2]
    shadow = ShadowScores("delivery_eta:v2", outputs[::-1], ModelCall(2.0, rows))
    sources = np.ones((rows, 2), dtype=np.int64)
    block = PredictionBlock(
        new_block_key(rows), time.time(), "delivery_eta:v1", features, outputs, b"", sources
    ).with_shadow(shadow)
    log = SQLitePredictionLog(tmp_path / "p.sqlite3", retention_s=3600)
    try:
        log.append(block)
        await log.flush()
    finally:
        await log.close()
    with sqlite3.connect(tmp_path / "p.sqlite3") as db:
        stored = db.execute(
            "SELECT features, outputs, shadow_outputs, feature_sources FROM prediction_blocks"
        ).fetchone()
    assert stored == (*block.encoded(), shadow.encoded(), b"\x01" * (rows * 2))


async def test_sqlite_joins_once_and_tells_duplicate_conflict_and_unknown(tmp_path: Path) -> None:
    log = SQLitePredictionLog(tmp_path / "p.sqlite3", retention_s=3600)
    block, (first, second) = _block(2)
    try:
        log.append(block)
        joined = await log.attach_feedback(second, 30.0)  # flushes this worker's pending writes
        assert joined.status == "joined" and joined.record is not None
        assert joined.record.predicted == 21.0 and joined.record.features[0] == 2.0
        assert (joined.record.lower, joined.record.upper) == (16.0, 31.0)
        assert (await log.attach_feedback(second, 30.0)).status == "duplicate"
        conflict = await log.attach_feedback(second, 45.0)
        assert conflict.status == "conflict" and conflict.actual == 30.0
        assert (await log.attach_feedback(first, 45.0)).status == "joined"  # its own label
        # An id of another block made 30 s ago or earlier, a malformed id: unknown.
        older = new_prediction_ids(1, now=time.time() - 30)[1][0]
        for unknown in (older, "zzz"):
            assert (await log.attach_feedback(unknown, 30.0)).status == "unknown"
        # One made moments ago (this or the last 10-s slot) may still be on its way from
        # another worker sharing the file: "not yet" (503), not "never made" (404).
        for recent in (first[:-5] + "00002", new_prediction_ids(1)[1][0]):
            with pytest.raises(PredictionLogUnavailable, match="made moments ago"):
                await log.attach_feedback(recent, 30.0)
    finally:
        await log.close()


async def test_sqlite_stores_one_row_per_request(tmp_path: Path) -> None:
    path = tmp_path / "p.sqlite3"
    log = SQLitePredictionLog(path, retention_s=3600)
    blocks = [_block(1000)[0] for _ in range(3)]
    for block in blocks:
        log.append(block)
    await log.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*), sum(rows) FROM prediction_blocks").fetchone() == (
            3,
            3000,
        )


async def test_sqlite_predictions_survive_a_restart_and_are_shared_by_workers(
    tmp_path: Path,
) -> None:
    path = tmp_path / "p.sqlite3"
    first = SQLitePredictionLog(path, retention_s=3600)
    block, (kept, _) = _block(2)
    first.append(block)
    await first.close()  # closing flushes
    worker_a, worker_b = SQLitePredictionLog(path, 3600), SQLitePredictionLog(path, 3600)
    try:
        assert (await worker_b.attach_feedback(kept, 12.0)).status == "joined"
        assert (await worker_a.attach_feedback(kept, 12.0)).status == "duplicate"
    finally:
        await worker_a.close()
        await worker_b.close()


async def test_sqlite_retention_forgets_old_predictions(tmp_path: Path) -> None:
    log = SQLitePredictionLog(tmp_path / "p.sqlite3", retention_s=60)
    old, (old_id, _) = _block(2, created_at=time.time() - 3600)
    new, (new_id, _) = _block(2)
    try:
        log.append(old)
        log.append(new)
        await log.flush()  # first write also prunes
        assert (await log.attach_feedback(old_id, 10.0)).status == "unknown"
        assert (await log.attach_feedback(new_id, 10.0)).status == "joined"
    finally:
        await log.close()


@pytest.mark.redis
async def test_redis_log_is_shared_by_replicas_and_joins_exactly_once(redis_server) -> None:  # type: ignore[no-untyped-def]
    pod_a = RedisPredictionLog(redis_server.url, retention_s=3600)
    pod_b = RedisPredictionLog(redis_server.url, retention_s=3600)
    block, (shared, other) = _block(2)
    try:
        pod_a.append(block)
        await pod_a.flush()
        results = await asyncio.gather(
            pod_a.attach_feedback(shared, 22.0), pod_b.attach_feedback(shared, 22.0)
        )
        assert sorted(r.status for r in results) == ["duplicate", "joined"]
        assert results[0].record is not None and results[0].record.predicted == 20.0
        conflict = await pod_b.attach_feedback(shared, 23.0)
        assert (conflict.status, conflict.actual) == ("conflict", 22.0)
        assert (await pod_b.attach_feedback(other, 23.0)).status == "joined"
        with pytest.raises(PredictionLogUnavailable, match="made moments ago"):
            await pod_b.attach_feedback(shared[:-5] + "00009", 23.0)  # pod_a's may come
        older = new_prediction_ids(1, now=time.time() - 30)[1][0]
        assert (await pod_b.attach_feedback(older, 23.0)).status == "unknown"
        assert (await pod_b.attach_feedback("nope", 23.0)).status == "unknown"
        # One hash per time slot and shard, with the retention (and one slot) as its TTL.
        client = redis.Redis.from_url(redis_server.url)
        keys = client.keys("delivery_eta:block:*")
        assert len(keys) == 1 and 3600 < client.ttl(keys[0]) <= 3610
    finally:
        await pod_a.close()
        await pod_b.close()


def _shadowed(block: PredictionBlock) -> PredictionBlock:
    """``block`` with both model calls and a challenger 5 minutes slower on every row."""
    return dataclasses.replace(
        block,
        call=ModelCall(ms=0.8, rows=16),
        shadow=ShadowScores("delivery_eta:challenger", block.outputs + 5.0, ModelCall(3.5, 400)),
    )


async def test_both_backends_join_a_label_to_the_challengers_answer_too(
    tmp_path: Path,
    redis_server,  # type: ignore[no-untyped-def]
) -> None:
    sqlite_log = SQLitePredictionLog(tmp_path / "p.sqlite3", retention_s=3600)
    redis_log = RedisPredictionLog(redis_server.url, retention_s=3600, key_prefix="shadow:")
    for log in (sqlite_log, redis_log):
        shadowed, (_, second) = _block(2)
        plain, (only,) = _block(1)
        try:
            log.append(_shadowed(shadowed))
            log.append(plain)
            result = await log.attach_feedback(second, 30.0)
            assert result.record is not None and result.record.predicted == 21.0
            assert result.record.shadow == ShadowPrediction(
                "delivery_eta:challenger", 26.0, 21.0, 36.0
            )
            # A block the challenger did not score joins as before, without a shadow answer.
            alone = await log.attach_feedback(only, 30.0)
            assert alone.status == "joined" and alone.record is not None
            assert alone.record.shadow is None
        finally:
            await log.close()
    with sqlite3.connect(tmp_path / "p.sqlite3") as db:
        stored = db.execute(
            "SELECT inference_ms, inference_rows, shadow_version, shadow_inference_ms,"
            " shadow_inference_rows FROM prediction_blocks WHERE shadow_version IS NOT NULL"
        ).fetchall()
    assert stored == [(0.8, 16, "delivery_eta:challenger", 3.5, 400)]
    location = block_location(shadowed.block_key)
    assert location is not None
    value = redis.Redis.from_url(redis_server.url).hget(f"shadow:{location[0]}", location[1])
    packed = unpack_block(value)
    assert packed is not None and packed.shadow_crc == version_crc("delivery_eta:challenger")
    assert (packed.call, packed.shadow_call) == (ModelCall(0.8, 16), ModelCall(3.5, 400))
    assert packed.shadow_outputs is not None
    assert np.frombuffer(packed.shadow_outputs, "<f8").reshape(2, 3)[1].tolist() == [
        26.0,
        21.0,
        36.0,
    ]


def _migration_sql() -> str:
    """The one-line migration docs/prediction-log.md gives for a file of an older release."""
    docs = (Path(__file__).parents[2] / "docs" / "prediction-log.md").read_text()
    (command,) = [line for line in docs.splitlines() if "sqlite3 predictions.sqlite3 '" in line]
    return command.split("'")[1]


async def test_a_file_of_an_older_release_is_refused_until_migrated_as_the_docs_say(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.sqlite3"
    old_key, old_ids = new_prediction_ids(2)
    with sqlite3.connect(path) as db:  # the table as the release before entity ids made it
        db.execute(
            "CREATE TABLE prediction_blocks (block_key TEXT PRIMARY KEY, created_at REAL NOT NULL,"
            " model_version TEXT NOT NULL, rows INTEGER NOT NULL, features BLOB NOT NULL,"
            " outputs BLOB NOT NULL)"
        )
        old, _ = _block(2)
        db.execute(
            "INSERT INTO prediction_blocks VALUES (?, ?, ?, ?, ?, ?)",
            (old_key, time.time(), "delivery_eta:old", 2, *old.encoded()),
        )
    db.close()
    with pytest.raises(
        OutdatedLogFile, match=r"older release \(no column entity_ids, inference_ms"
    ):
        SQLitePredictionLog(path, retention_s=3600)

    with sqlite3.connect(path) as db:
        db.executescript(_migration_sql())
    db.close()
    log = SQLitePredictionLog(path, retention_s=3600)
    block, (first, _) = _block(2)
    try:
        log.append(_shadowed(block))
        result = await log.attach_feedback(first, 22.0)
        assert result.record is not None and result.record.shadow is not None
        assert result.record.shadow.predicted == 25.0
        kept = await log.attach_feedback(old_ids[1], 30.0)  # the old blocks still take labels
        assert kept.status == "joined" and kept.record is not None
        assert kept.record.model_version == "delivery_eta:old"
    finally:
        await log.close()


def test_a_key_is_made_moments_ago_in_its_slot_and_the_next_only() -> None:
    now = 1_800_000_005.0  # 5 s into a 10-s slot
    key = new_prediction_ids(1, now=now)[0]
    assert made_moments_ago(key, now=now)
    assert made_moments_ago(key, now=now + 10)  # the next slot: up to 20 s old
    assert not made_moments_ago(key, now=now + 20)
    assert not made_moments_ago(key, now=now - 10)  # a clock behind the key's: not "recent"
    assert not made_moments_ago("not-a-key-at-all-zzzzzzzzzzzzzz", now=now)
