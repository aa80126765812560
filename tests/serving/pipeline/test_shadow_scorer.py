"""The shadow scorer without a server: what it scores, what it drops and why, and that every
row ends in exactly one outcome."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import prometheus_client
import pytest

from models.contract import default_contract
from prediction_log import PredictionBlock, new_prediction_ids
from serving.pipeline.shadow import ShadowScorer, shadow_selected
from serving.telemetry.metrics import SHADOW_OUTCOMES, MetricsRecorder


def _block(rows: int) -> PredictionBlock:
    key, _ = new_prediction_ids(rows)
    features = np.column_stack([np.arange(rows, dtype=float) + 1, np.ones((rows, 4))])
    outputs = np.column_stack([features[:, 0] + 20, features[:, 0] + 15, features[:, 0] + 30])
    return PredictionBlock(key, time.time(), "delivery_eta:champion", features, outputs)


def _later(rows: np.ndarray) -> np.ndarray:
    """A challenger 5 minutes later than the champion on every row."""
    return np.column_stack([rows[:, 0] + 25, rows[:, 0] + 20, rows[:, 0] + 35])


def _outcomes() -> dict[str, float]:
    return {
        outcome: prometheus_client.REGISTRY.get_sample_value(
            "delivery_eta_shadow_rows_total", {"outcome": outcome}
        )
        or 0.0
        for outcome in SHADOW_OUTCOMES
    }


def _scorer(
    logged: list[PredictionBlock], predict=_later, overloaded=lambda: False, **kwargs
) -> ShadowScorer:  # type: ignore[no-untyped-def]
    options = {"fraction": 1.0, "max_queue_rows": 10_000, "interval_s": 0.02, **kwargs}
    return ShadowScorer(
        predict,
        model_version="delivery_eta:challenger",
        sink=logged.append,
        clamp=lambda outputs: np.clip(outputs, 1, 240),
        overloaded=overloaded,
        metrics=MetricsRecorder(
            "delivery_eta:champion",
            "embedded",
            "delivery_eta:challenger",
            contract=default_contract(),
        ),
        **options,
    )


async def test_queued_blocks_are_scored_in_one_call_and_logged_with_the_challengers_answers() -> (
    None
):
    calls: list[int] = []

    def counting(rows: np.ndarray) -> np.ndarray:
        calls.append(len(rows))
        return _later(rows)

    logged: list[PredictionBlock] = []
    scorer = _scorer(logged, counting)
    blocks = [_block(n) for n in (1, 3, 2)]
    for block in blocks:
        scorer.submit(block, np.ones(len(block), dtype=bool))
    assert logged == [] and scorer.queue_rows == 6  # nothing on the request path
    await asyncio.sleep(0.1)
    await scorer.close()
    assert calls == [6]
    assert [b.block_key for b in logged] == [b.block_key for b in blocks]
    for block in logged:
        assert block.shadow is not None and block.shadow.model_version == "delivery_eta:challenger"
        np.testing.assert_array_equal(block.shadow.outputs[:, 0], block.outputs[:, 0] + 5)
        assert block.shadow.call.rows == 6 and block.shadow.call.ms > 0


async def test_overload_and_a_full_queue_drop_shadow_work_first_and_log_the_block_anyway() -> None:
    before = _outcomes()
    logged: list[PredictionBlock] = []
    busy = {"now": True}
    scorer = _scorer(logged, overloaded=lambda: busy["now"], max_queue_rows=5)
    scorer.submit(_block(2), np.ones(2, dtype=bool))  # champion overloaded: not queued
    assert len(logged) == 1 and logged[0].shadow is None
    busy["now"] = False
    scorer.submit(_block(4), np.ones(4, dtype=bool))
    scorer.submit(_block(3), np.ones(3, dtype=bool))  # 4 + 3 > 5: over the queue bound
    assert len(logged) == 2 and scorer.queue_rows == 4
    await scorer.close()
    after = _outcomes()
    assert after["dropped_overload"] - before["dropped_overload"] == 2
    assert after["dropped_queue_full"] - before["dropped_queue_full"] == 3
    assert after["scored"] - before["scored"] == 4
    assert [b.shadow is not None for b in logged] == [False, False, True]


@pytest.mark.parametrize(
    "challenger",
    [
        pytest.param(lambda rows: 1 / 0, id="raises"),
        pytest.param(lambda rows: np.full((len(rows), 3), np.nan), id="nan"),
        pytest.param(lambda rows: np.ones((len(rows), 2)), id="wrong-shape"),
    ],
)
async def test_a_failing_challenger_costs_only_its_own_answers(challenger) -> None:  # type: ignore[no-untyped-def]
    before = _outcomes()
    logged: list[PredictionBlock] = []
    scorer = _scorer(logged, challenger)
    blocks = [_block(2), _block(1)]
    for block in blocks:
        scorer.submit(block, np.ones(len(block), dtype=bool))
    await scorer.close()
    assert logged == blocks  # logged unchanged, without a shadow answer
    assert _outcomes()["failed"] - before["failed"] == 3


def test_the_fraction_selects_blocks_by_key_independently_of_log_sampling() -> None:
    # All in one 10-s slot of the keys' clock (their last 7 digits): the share must still hold.
    keys = [new_prediction_ids(1, now=1_800_000_000.0)[0] for _ in range(20_000)]
    assert not any(shadow_selected(k, 0.0) for k in keys)
    assert all(shadow_selected(k, 1.0) for k in keys)
    share = np.mean([shadow_selected(k, 0.25) for k in keys])
    assert 0.23 < share < 0.27
    # The log samples batches by the key's first 8 digits; the shadow reads 7 others.
    low_head = [k for k in keys if int(k[:8], 16) < 0.25 * 16**8]
    assert 0.22 < np.mean([shadow_selected(k, 0.25) for k in low_head]) < 0.28


async def test_a_flush_waits_for_the_rows_queued_before_it_not_those_that_keep_coming() -> None:
    def slow(rows: np.ndarray) -> np.ndarray:
        time.sleep(0.05)
        return _later(rows)

    logged: list[PredictionBlock] = []
    scorer = _scorer(logged, slow, interval_s=3600)  # only explicit flushes score
    first = _block(1)
    scorer.submit(first, np.ones(1, dtype=bool))
    flushing = asyncio.create_task(scorer.flush())
    await asyncio.sleep(0.01)  # the first call is running
    later = _block(1)
    scorer.submit(later, np.ones(1, dtype=bool))
    await flushing
    assert [b.block_key for b in logged] == [first.block_key] and scorer.queue_rows == 1
    await scorer.close()
    assert [b.block_key for b in logged] == [first.block_key, later.block_key]
