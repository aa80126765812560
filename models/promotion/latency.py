"""Single-row latency as the service pays it: each model's ``predict_rows`` through the serving
runtime, on one row of the holdout, the models' calls interleaved so that machine noise hits
them alike.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from models.contract.bodies import example_order
from models.features import ORDER_TS, TARGET, training_frame
from models.promotion.holdout import missing_columns
from models.runtime_selection import select_runtime
from models.settings import ModelRuntime
from models.store.artifact import ModelArtifact

LATENCY_CALLS = 1000
"""Timed single-row calls per model (compare() accepts no fewer than 200). Measured on this
2-core machine under load, Treelite 1-row calls take ~0.3 ms but their p95 is set by scheduler
jitter: the p95 ratio of two similar models (150 vs 200 trees) spread 0.96-2.93 over 8 runs of 200 calls
(one would have refused a good candidate), 0.92-1.11 over 8 runs of 1,000."""
LATENCY_WARMUP_CALLS = 20


def latency_row(artifact: ModelArtifact, orders: pd.DataFrame) -> np.ndarray:
    """One model-input row of ``artifact``: the first of ``orders`` if they hold its contract's
    fields, else its contract's example order."""
    contract = artifact.contract
    if missing_columns(contract, orders):
        example = example_order(contract)
        orders = pd.DataFrame([{**example, ORDER_TS: pd.Timestamp(0, tz="UTC"), TARGET: 0.0}])
    return training_frame(orders.iloc[[0]], contract, artifact.entities).to_numpy()


def serving_predict_rows(
    artifact: ModelArtifact, runtime: ModelRuntime
) -> Callable[[np.ndarray], np.ndarray]:
    """``predict_rows`` as the service calls it for small batches with ``runtime``."""
    return select_runtime(artifact, runtime).predict_rows


def single_row_latencies_ms(
    artifacts: Sequence[ModelArtifact],
    row_orders: pd.DataFrame,
    calls: int = LATENCY_CALLS,
    warmup: int = LATENCY_WARMUP_CALLS,
    runtime: ModelRuntime = "tl2cgen",
) -> list[np.ndarray]:
    """Latency (ms) of a 1-row ``predict_rows``, ``calls`` times per model, interleaved.

    Each model is called through the serving ``runtime`` (its compiled library by default, as
    the service does; a model without one falls back to Treelite GTIL there and here too). Round ``i`` calls the models
    in order, reversed on odd rounds (ABBA), so slow phases of a busy machine fall on every
    model alike. One native thread, like the serving batcher.
    """
    if calls < 1:
        raise ValueError("calls must be >= 1")
    predictors = [serving_predict_rows(a, runtime) for a in artifacts]
    # The same order for every model, each joined by its own contract and entity features.
    rows = [latency_row(a, row_orders) for a in artifacts]
    timings = [np.empty(calls) for _ in artifacts]
    order = list(range(len(artifacts)))
    with threadpool_limits(1):
        for _ in range(warmup):
            for i in order:
                predictors[i](rows[i])
        for call in range(calls):
            for i in order if call % 2 == 0 else order[::-1]:
                started = time.perf_counter_ns()
                predictors[i](rows[i])
                timings[i][call] = (time.perf_counter_ns() - started) / 1e6
    return timings
