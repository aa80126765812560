"""The read interface (``prediction_log.reading.PredictionLogReader``): the same blocks written
to either backend read back the same -- labelled blocks since T and scored blocks since T -- so
the offline tools need not know which backend they read."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import numpy as np
import pytest

from prediction_log import (
    ModelCall,
    PredictionBlock,
    RedisPredictionLog,
    ShadowScores,
    SQLitePredictionLog,
    encode_entity_ids,
    new_prediction_ids,
)
from prediction_log.buffered import BufferedLog
from prediction_log.location import LogLocation
from prediction_log.reading import LabelledBlock, LogReadError

NOW = time.time()
CHAMPION, CHALLENGER = "delivery_eta:champion", "delivery_eta:challenger"


def _block(rows: int, created_at: float, shadowed: bool) -> tuple[PredictionBlock, list[str]]:
    key, ids = new_prediction_ids(rows)
    outputs = np.array([[20.0 + i, 15.0 + i, 30.0 + i] for i in range(rows)])
    block = PredictionBlock(
        key,
        created_at,
        CHAMPION,
        np.arange(rows * 5, dtype=float).reshape(rows, 5),
        outputs,
        entity_ids=encode_entity_ids([[f"r_{i}" for i in range(rows)]]),
        feature_sources=np.zeros((rows, 2), dtype=np.int8),
        call=ModelCall(0.5, rows),
        shadow=ShadowScores(CHALLENGER, outputs + 2.0, ModelCall(1.5, 64)) if shadowed else None,
    )
    return block, ids


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
async def written(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[LogLocation, Callable[[], BufferedLog]]]:
    """(where the log is, a writer of it), for each backend in turn."""
    if request.param == "sqlite":
        path = tmp_path / "p.sqlite3"
        yield LogLocation("sqlite", path=path), lambda: SQLitePredictionLog(path, 3 * 86_400)
        return
    server = request.getfixturevalue("redis_server")
    yield (
        LogLocation("redis", redis_url=server.url, redis_prefix="read:"),
        lambda: RedisPredictionLog(server.url, 3 * 86_400, key_prefix="read:"),
    )


async def _write(
    writer: BufferedLog, blocks: list[tuple[PredictionBlock, list[str]]], labels: dict[str, float]
) -> None:
    try:
        for block, _ in blocks:
            writer.append(block)
        await writer.flush()
        for prediction_id, actual in labels.items():
            assert (await writer.attach_feedback(prediction_id, actual)).status == "joined"
    finally:
        await writer.close()


def _labels(pages: list[list[LabelledBlock]]) -> dict[str, tuple[float, int]]:
    return {
        label.prediction_id: (label.actual, entry.block.rows)
        for page in pages
        for entry in page
        if entry.block is not None
        for label in entry.labels
    }


async def test_both_backends_read_back_the_labelled_and_the_scored_blocks(
    written: tuple[LogLocation, Callable[[], BufferedLog]],
) -> None:
    location, writer = written
    old = _block(3, NOW - 30 * 3600, shadowed=True)  # outside a 24-hour window
    batch = _block(4, NOW - 3600, shadowed=True)
    single = _block(1, NOW - 60, shadowed=False)
    unlabelled = _block(2, NOW - 10, shadowed=True)
    labels = {batch[1][0]: 31.0, batch[1][3]: 44.5, single[1][0]: 12.0, old[1][2]: 50.0}
    await _write(writer(), [old, batch, single, unlabelled], labels)

    with location.reader() as log:
        every_label = list(log.labelled_blocks())
        recent_labels = list(log.labelled_blocks(time.time() - 60))
        scored = [block for page in log.scored_blocks(NOW - 24 * 3600) for block in page]
        everything = [block for page in log.scored_blocks() for block in page]

    # Labelled blocks: each label once, with its block; since T is on the label's time.
    rows_of = {ids[0][:-5]: len(ids) for _, ids in (old, batch, single)}
    assert _labels(every_label) == {
        prediction_id: (actual, rows_of[prediction_id[:-5]])
        for prediction_id, actual in labels.items()
    }
    assert _labels(recent_labels) == _labels(every_label)  # all were given just now
    stored = next(
        entry.block
        for page in every_label
        for entry in page
        if entry.block is not None and entry.block.rows == 4
    )
    assert (stored.model_version, stored.created_at) == (CHAMPION, pytest.approx(NOW - 3600))
    assert stored.entity_ids == batch[0].entity_ids
    assert np.frombuffer(stored.features, "<f8").reshape(4, 5).tolist() == (
        batch[0].features.tolist()
    )

    # Scored blocks: since T is on the block's creation; labels in place, NaN elsewhere.
    assert sorted(len(block.outputs) for block in scored) == [1, 2, 4]
    assert sorted(len(block.outputs) for block in everything) == [1, 2, 3, 4]
    by_rows = {len(block.outputs): block for block in scored}
    four = by_rows[4]
    assert four.model_version == CHAMPION and four.call is not None and four.call.rows == 4
    np.testing.assert_array_equal(four.outputs, batch[0].outputs)
    np.testing.assert_array_equal(four.actual, [31.0, np.nan, np.nan, 44.5])
    assert four.shadow_version == CHALLENGER and four.shadow_call is not None
    assert four.shadow_outputs is not None
    np.testing.assert_array_equal(four.shadow_outputs, batch[0].outputs + 2.0)
    assert by_rows[1].shadow_version is None and by_rows[1].actual.tolist() == [12.0]
    assert np.isnan(by_rows[2].actual).all()


async def test_both_backends_read_an_empty_log_as_no_blocks(
    written: tuple[LogLocation, Callable[[], BufferedLog]],
) -> None:
    location, writer = written
    await _write(writer(), [], {})
    with location.reader() as log:
        assert [b for page in log.labelled_blocks() for b in page] == []
        assert [b for page in log.scored_blocks() for b in page] == []


def test_a_log_that_cannot_be_opened_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(LogReadError, match="does not exist"):
        LogLocation("sqlite", path=tmp_path / "missing.sqlite3").reader()
    assert not (tmp_path / "missing.sqlite3").exists()
    with pytest.raises(LogReadError, match=r"redis redis://\*\*\*@127\.0\.0\.1:1/0 failed"):
        LogLocation("redis", redis_url="redis://:pw@127.0.0.1:1/0").reader()


@pytest.mark.redis
async def test_a_redis_slot_hash_holds_blocks_labels_and_versions_in_compact_fields(
    redis_server,  # type: ignore[no-untyped-def]
) -> None:
    import redis

    from prediction_log.redis_format import block_location, label_field, unpack_label

    block, ids = _block(2, NOW, shadowed=True)
    log = RedisPredictionLog(redis_server.url, 3600, key_prefix="fields:")
    await _write(log, [(block, ids)], {ids[1]: 20.0})
    location = block_location(block.block_key)
    assert location is not None
    suffix, field = location
    client = redis.Redis.from_url(redis_server.url)
    try:
        # A hash of the hash-per-request format under the same prefix is not read.
        client.hset(f"fields:{block.block_key}", mapping={"created_at": NOW, "rows": 1})
        (key,) = client.keys("fields:?-???????")
        stored = client.hgetall(key)
        assert 3600 < client.ttl(key) <= 3610
    finally:
        client.close()
    assert key == f"fields:{suffix}".encode()
    assert len(field) == 10 and sorted(map(len, stored)) == [5, 5, 10, 14]
    assert {stored[name] for name in stored if len(name) == 5} == {
        b"%s" % v.encode() for v in (CHAMPION, CHALLENGER)
    }
    label = unpack_label(stored[label_field(field, 1)])
    assert label is not None and label[0] == 20.0 and abs(label[1] - time.time()) < 60
    with LogLocation("redis", redis_url=redis_server.url, redis_prefix="fields:").reader() as r:
        (labelled,) = [b for page in r.labelled_blocks() for b in page]
        assert [lab.prediction_id for lab in labelled.labels] == [ids[1]]
