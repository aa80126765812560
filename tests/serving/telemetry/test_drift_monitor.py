"""The drift monitor: a rolling window per worker, scored against the training reference."""

import numpy as np
import pytest

from models.drift_stats import reference_bins
from serving.telemetry.drift_monitor import MIN_ROWS_FOR_PSI, DriftMonitor


def test_monitor_scores_only_the_shifted_feature_and_keeps_a_rolling_window() -> None:
    rng = np.random.default_rng(2)
    train = rng.normal(size=(20_000, 2))
    reference = {
        "a": reference_bins(train[:, 0]),
        "b": reference_bins(train[:, 1]),
        "predicted_delivery_time_min": reference_bins(train[:, 0] + train[:, 1]),
    }
    monitor = DriftMonitor(reference, ["a", "b"], window=1_000)
    monitor.observe(train[:10], train[:10].sum(axis=1))
    assert monitor.scores() is None  # fewer than MIN_ROWS_FOR_PSI rows
    assert MIN_ROWS_FOR_PSI > 10

    normal = rng.normal(size=(1_000, 2))
    monitor.observe(normal, normal.sum(axis=1))
    calm = monitor.scores()
    assert calm is not None and max(calm.values()) < 0.1

    shifted = rng.normal(size=(1_000, 2))
    shifted[:, 0] += 1.5
    for chunk in np.array_split(shifted, 7):  # arrives over many requests; wraps the ring
        monitor.observe(chunk, chunk.sum(axis=1))
    drifted = monitor.scores()
    assert drifted is not None
    assert drifted["a"] > 0.2
    assert drifted["b"] < 0.1
    assert drifted["predicted_delivery_time_min"] > 0.2


def test_monitor_rejects_reference_without_a_feature() -> None:
    with pytest.raises(ValueError, match="lack"):
        DriftMonitor({"a": reference_bins(np.arange(100.0))}, ["a", "b"], window=10)
