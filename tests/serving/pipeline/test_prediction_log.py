"""Prediction logs: labels join once, survive restarts, and are shared across Redis clients."""

import time
from pathlib import Path

import pytest

from serving.pipeline.prediction_log import (
    PredictionRecord,
    RedisPredictionLog,
    SQLitePredictionLog,
)


def _record(pid: str, created_at: float | None = None) -> PredictionRecord:
    return PredictionRecord(
        pid,
        created_at or time.time(),
        "delivery_eta:v1",
        [3.0, 1.0, 25.0, 30.0, 31.0],
        28.0,
        20.0,
        36.0,
    )


async def test_sqlite_joins_once_and_tells_duplicate_conflict_and_unknown(tmp_path: Path) -> None:
    log = SQLitePredictionLog(tmp_path / "p.sqlite3", retention_s=3600)
    try:
        log.append([_record("a"), _record("b")])
        joined = await log.attach_feedback("a", 30.0)  # flushes this worker's pending writes
        assert joined.status == "joined" and joined.record is not None
        assert joined.record.predicted == 28.0 and joined.record.features[0] == 3.0
        assert (await log.attach_feedback("a", 30.0)).status == "duplicate"
        conflict = await log.attach_feedback("a", 45.0)
        assert conflict.status == "conflict" and conflict.actual == 30.0
        assert (await log.attach_feedback("zzz", 30.0)).status == "unknown"
    finally:
        await log.close()


async def test_sqlite_predictions_survive_a_restart_and_are_shared_by_workers(
    tmp_path: Path,
) -> None:
    path = tmp_path / "p.sqlite3"
    first = SQLitePredictionLog(path, retention_s=3600)
    first.append([_record("kept")])
    await first.close()  # closing flushes
    worker_a, worker_b = SQLitePredictionLog(path, 3600), SQLitePredictionLog(path, 3600)
    try:
        assert (await worker_b.attach_feedback("kept", 12.0)).status == "joined"
        assert (await worker_a.attach_feedback("kept", 12.0)).status == "duplicate"
    finally:
        await worker_a.close()
        await worker_b.close()


async def test_sqlite_retention_forgets_old_predictions(tmp_path: Path) -> None:
    log = SQLitePredictionLog(tmp_path / "p.sqlite3", retention_s=60)
    try:
        log.append([_record("old", created_at=time.time() - 3600), _record("new")])
        await log.flush()  # first write also prunes
        assert (await log.attach_feedback("old", 10.0)).status == "unknown"
        assert (await log.attach_feedback("new", 10.0)).status == "joined"
    finally:
        await log.close()


@pytest.mark.redis
async def test_redis_log_is_shared_by_replicas_and_joins_exactly_once(redis_server) -> None:  # type: ignore[no-untyped-def]
    pod_a = RedisPredictionLog(redis_server.url, retention_s=3600)
    pod_b = RedisPredictionLog(redis_server.url, retention_s=3600)
    try:
        pod_a.append([_record("shared")])
        await pod_a.flush()
        import asyncio

        results = await asyncio.gather(
            pod_a.attach_feedback("shared", 22.0), pod_b.attach_feedback("shared", 22.0)
        )
        assert sorted(r.status for r in results) == ["duplicate", "joined"]
        assert (await pod_b.attach_feedback("shared", 23.0)).status == "conflict"
        assert (await pod_b.attach_feedback("nope", 23.0)).status == "unknown"
    finally:
        await pod_a.close()
        await pod_b.close()
