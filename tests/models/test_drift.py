"""PSI: near zero for traffic like the reference, large for a shifted feature."""

import numpy as np
import pytest

from models.drift import MIN_ROWS_FOR_PSI, DriftMonitor, bin_shares, psi, reference_bins


def test_reference_bins_are_deciles_for_continuous_and_values_for_discrete() -> None:
    rng = np.random.default_rng(0)
    continuous = reference_bins(rng.normal(size=10_000))
    assert len(continuous["inner_edges"]) == 9
    assert continuous["shares"] == pytest.approx([0.1] * 10, abs=0.002)
    discrete = reference_bins(np.array([0, 1, 1, 1] * 100, dtype=float))
    assert discrete == {"inner_edges": [0.5], "shares": [0.25, 0.75]}


def test_values_outside_the_training_range_fall_in_the_open_outer_bins() -> None:
    shares = bin_shares(np.array([-100.0, 0.5, 100.0]), [0.0, 1.0])
    assert list(shares) == pytest.approx([1 / 3, 1 / 3, 1 / 3])


def test_psi_is_small_for_the_same_distribution_and_large_for_a_shift() -> None:
    rng = np.random.default_rng(1)
    reference = reference_bins(rng.lognormal(1.0, 0.6, size=20_000))
    same = bin_shares(rng.lognormal(1.0, 0.6, size=2_000), reference["inner_edges"])
    shifted = bin_shares(rng.lognormal(1.0, 0.6, size=2_000) * 2, reference["inner_edges"])
    assert psi(same, np.array(reference["shares"])) < 0.05
    assert psi(shifted, np.array(reference["shares"])) > 0.2


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
