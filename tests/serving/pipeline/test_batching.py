"""The adaptive batcher merges concurrent calls and returns each caller its own rows."""

import asyncio
import time

import numpy as np

from serving.pipeline.batching import (
    OVERLOAD_COOLDOWN_S,
    AdaptiveBatcher,
    ModelCallResult,
    Overloaded,
    ScoredRows,
)


def _slow_double(rows: np.ndarray) -> np.ndarray:
    import time

    time.sleep(0.005)  # a model call long enough for a queue to form behind it
    return rows * 2


async def test_concurrent_calls_are_merged_and_answered_in_order() -> None:
    batches: list[tuple[int, int]] = []
    batcher = AdaptiveBatcher(
        _slow_double,
        max_batch_size=1000,
        max_latency_ms=10_000,
        observe_batch=lambda requests, rows: batches.append((requests, rows)),
    )
    try:
        inputs = [np.full((i % 3 + 1, 2), float(i)) for i in range(200)]
        outputs = await asyncio.gather(*(batcher.predict(x) for x in inputs))
    finally:
        batcher.shutdown()
    for x, y in zip(inputs, outputs, strict=True):
        np.testing.assert_array_equal(y.outputs, x * 2)
    assert sum(rows for _, rows in batches) == sum(x.shape[0] for x in inputs)
    assert max(requests for requests, _ in batches) > 1
    # Each answer names the model call it was part of: the call's rows, and its time alone.
    assert sorted({y.call_rows for y in outputs}) == sorted({rows for _, rows in batches})
    assert all(0.005 <= y.call_seconds < 1 for y in outputs)


async def test_tags_reach_the_call_observer_but_not_the_model() -> None:
    seen: list[ModelCallResult] = []

    def on_call(call: ModelCallResult) -> np.ndarray:
        seen.append(call)
        return call.outputs + 1

    batcher = AdaptiveBatcher(
        _slow_double, max_batch_size=1000, max_latency_ms=10_000, on_call=on_call
    )
    try:
        inputs = [np.full((2, 3), float(i)) for i in range(20)]
        tags = [np.full(2, 100.0 + i) for i in range(20)]
        outputs = await asyncio.gather(
            *(batcher.predict(x, t) for x, t in zip(inputs, tags, strict=True))
        )
    finally:
        batcher.shutdown()
    for x, y in zip(inputs, outputs, strict=True):
        np.testing.assert_array_equal(y.outputs, x * 2 + 1)  # what on_call returned
    merged_rows = np.concatenate([call.features for call in seen])
    merged_tags = np.concatenate([call.tags for call in seen if call.tags is not None])
    assert merged_rows.shape == (40, 3)  # the model saw the rows alone
    np.testing.assert_array_equal(merged_tags - 100.0, merged_rows[:, 0])


async def test_a_request_cut_to_fill_a_batch_keeps_its_tags_and_names_its_first_call() -> None:
    seen: list[ModelCallResult] = []

    def on_call(call: ModelCallResult) -> np.ndarray:
        seen.append(call)
        return call.outputs

    # Batches of at most 4 rows: 3 requests of 3 rows are cut across calls.
    batcher = AdaptiveBatcher(
        _slow_double, max_batch_size=4, max_latency_ms=10_000, on_call=on_call
    )
    try:
        inputs = [np.arange(3 * i, 3 * i + 3, dtype=float)[:, None] for i in range(3)]
        tags = [x[:, 0] + 0.5 for x in inputs]
        outputs = await asyncio.gather(
            *(batcher.predict(x, t) for x, t in zip(inputs, tags, strict=True))
        )
    finally:
        batcher.shutdown()
    assert max(len(call.features) for call in seen) <= 4 and len(seen) >= 3
    for call in seen:  # each row's tag stayed with the row, wherever the request was cut
        assert call.tags is not None
        np.testing.assert_array_equal(call.tags, call.features[:, 0] + 0.5)
    for x, y in zip(inputs, outputs, strict=True):
        np.testing.assert_array_equal(y.outputs, x * 2)
        assert 1 <= y.call_rows <= 4
    assert not batcher._waiting, "no request is left registered"


async def test_a_request_larger_than_a_batch_is_one_model_call_whole() -> None:
    seen: list[ModelCallResult] = []

    def on_call(call: ModelCallResult) -> np.ndarray:
        seen.append(call)
        return call.outputs

    # Batches of at most 4 rows; a 10-row request behind a 2-row one, and a 3-row one after.
    batcher = AdaptiveBatcher(
        _slow_double, max_batch_size=4, max_latency_ms=10_000, on_call=on_call
    )
    try:
        inputs = [np.arange(n, dtype=float)[:, None] + 100 * n for n in (2, 10, 3)]
        outputs = await asyncio.gather(*(batcher.predict(x, x[:, 0]) for x in inputs))
    finally:
        batcher.shutdown()
    for x, y in zip(inputs, outputs, strict=True):
        np.testing.assert_array_equal(y.outputs, x * 2)
    # The large request fills the small one's batch (2 + 2 rows), then the rest of it is one
    # call of its own rather than two more batches of 4.
    assert [len(call.features) for call in seen] == [4, 8, 3]
    assert [y.call_rows for y in outputs] == [4, 4, 3]
    for call in seen:
        assert call.tags is not None
        np.testing.assert_array_equal(call.tags, call.features[:, 0])
    assert not batcher._waiting


async def test_queue_over_its_latency_budget_sheds_with_overloaded() -> None:
    batcher = AdaptiveBatcher(_slow_double, max_batch_size=1, max_latency_ms=10)
    try:
        results = await asyncio.gather(
            *(batcher.predict(np.ones((1, 2))) for _ in range(300)), return_exceptions=True
        )
    finally:
        batcher.shutdown()
    shed = [r for r in results if isinstance(r, Overloaded)]
    assert shed, "a 10 ms budget with 300 queued 5 ms calls must shed some"
    assert all(isinstance(r, (ScoredRows, Overloaded)) for r in results)
    assert time.monotonic() - batcher.shed_at < 5, "the last shed is remembered"
    assert batcher.queued_rows == 0
    assert batcher.overloaded()  # within OVERLOAD_COOLDOWN_S of a shed request
    batcher.shed_at -= OVERLOAD_COOLDOWN_S
    assert not batcher.overloaded()  # nothing queued, and the shed is long enough ago
    assert len(shed) < len(results), "and it still answers some"


async def test_a_lone_request_after_a_burst_is_not_held_back() -> None:
    import time

    # max_batch_size 10: each burst of 200 queues for ~100 ms, which teaches BentoML's
    # optimizer a long wait (uncapped, a lone request then measured ~69 ms instead of ~7).
    batcher = AdaptiveBatcher(_slow_double, max_batch_size=10, max_latency_ms=10_000, max_wait_ms=2)
    try:
        for _ in range(3):
            await asyncio.gather(*(batcher.predict(np.ones((1, 2))) for _ in range(200)))
        batcher._dispatcher.optimizer.trigger_refresh()  # it refreshes every 5 s on its own
        started = time.perf_counter()
        await batcher.predict(np.ones((1, 2)))
        lone_ms = (time.perf_counter() - started) * 1000
    finally:
        batcher.shutdown()
    assert lone_ms < 30, f"a lone request took {lone_ms:.0f} ms"
