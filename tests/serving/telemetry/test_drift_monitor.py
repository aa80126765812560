"""The drift monitor: a rolling window per worker, scored against the training reference."""

import numpy as np
import pytest

from models.cohorts import Cohorts
from models.contract import default_contract
from models.drift_stats import category_bins, reference_bins
from serving.telemetry.drift_monitor import MIN_ROWS_FOR_PSI, DriftMonitor

CONTRACT = default_contract()
FEATURE_NAMES = CONTRACT.feature_names


def _no_cohorts(rows: int) -> np.ndarray:
    return np.zeros((rows, 3), dtype=np.int64)


def test_monitor_scores_only_the_shifted_feature_and_keeps_a_rolling_window() -> None:
    rng = np.random.default_rng(2)
    train = rng.normal(size=(20_000, 2))
    reference = {
        "a": reference_bins(train[:, 0]),
        "b": reference_bins(train[:, 1]),
        "predicted_delivery_time_min": reference_bins(train[:, 0] + train[:, 1]),
    }
    monitor = DriftMonitor(reference, ["a", "b"], window=1_000)
    monitor.observe(train[:10], train[:10].sum(axis=1), _no_cohorts(10))
    assert monitor.scores() is None  # fewer than MIN_ROWS_FOR_PSI rows
    assert MIN_ROWS_FOR_PSI > 10

    normal = rng.normal(size=(1_000, 2))
    monitor.observe(normal, normal.sum(axis=1), _no_cohorts(1_000))
    calm = monitor.scores()
    assert calm is not None and max(calm.values()) < 0.1

    shifted = rng.normal(size=(1_000, 2))
    shifted[:, 0] += 1.5
    for chunk in np.array_split(shifted, 7):  # arrives over many requests; wraps the ring
        monitor.observe(chunk, chunk.sum(axis=1), _no_cohorts(len(chunk)))
    drifted = monitor.scores()
    assert drifted is not None
    assert drifted["a"] > 0.2
    assert drifted["b"] < 0.1
    assert drifted["predicted_delivery_time_min"] > 0.2


def test_monitor_rejects_reference_without_a_feature() -> None:
    with pytest.raises(ValueError, match="lack"):
        DriftMonitor({"a": reference_bins(np.arange(100.0))}, ["a", "b"], window=10)


def test_monitor_scores_cohort_drift_when_the_model_recorded_a_cohort_reference() -> None:
    rng = np.random.default_rng(3)
    features, known = _orders(rng, 20_000, far_share=0.1)
    points = 20 + 2 * features[:, 0]
    reference = {name: reference_bins(features[:, i]) for i, name in enumerate(FEATURE_NAMES)} | {
        "predicted_delivery_time_min": reference_bins(points)
    }
    cohorts = Cohorts(CONTRACT)
    with_cohorts = DriftMonitor(
        reference, FEATURE_NAMES, 2_000, cohorts.reference(features, points, known), cohorts
    )
    # A model from before cohorts were recorded: no reference, no cohort PSI.
    without = DriftMonitor(reference, FEATURE_NAMES, 2_000, None, cohorts)
    live, live_known = _orders(rng, 2_000, far_share=0.5)  # far orders: 10 % -> 50 %
    live_points = 20 + 2 * live[:, 0]
    for monitor in (with_cohorts, without):
        monitor.observe(live, live_points, cohorts.codes(live, live_known))
    cohort_psi, mix_psi = with_cohorts.cohort_scores()
    assert mix_psi["distance"] > 0.2 and mix_psi["peak"] < 0.05 and mix_psi["entity"] < 0.05
    assert set(cohort_psi) <= set(cohorts.names)
    # Within a distance band predictions did not move; peak and off-peak mix the bands, so
    # their prediction distributions did.
    assert cohort_psi["distance_0_2km"] < 0.1 and cohort_psi["distance_10km_plus"] < 0.1
    assert cohort_psi["peak"] > 0.2 and cohort_psi["off_peak"] > 0.2
    assert without.cohort_scores() == ({}, {})


def test_a_category_drifts_by_its_shares_of_values() -> None:
    # Training stores one bin per category value: the PSI compares the values' shares.
    rng = np.random.default_rng(4)
    trained = rng.choice(3, 20_000, p=[0.6, 0.3, 0.1]).astype(float)
    reference = {
        "weather": category_bins(trained, 3),
        "predicted_delivery_time_min": reference_bins(trained),
    }
    assert len(reference["weather"]["shares"]) == 3
    calm, stormy = (DriftMonitor(reference, ["weather"], 1_000) for _ in range(2))
    same = rng.choice(3, 1_000, p=[0.6, 0.3, 0.1]).astype(float)
    shifted = rng.choice(3, 1_000, p=[0.3, 0.3, 0.4]).astype(float)
    calm.observe(same[:, None], same, np.zeros((1_000, 0)))
    stormy.observe(shifted[:, None], shifted, np.zeros((1_000, 0)))
    calm_scores, stormy_scores = calm.scores(), stormy.scores()
    assert calm_scores is not None and stormy_scores is not None
    assert calm_scores["weather"] < 0.02 < 0.2 < stormy_scores["weather"]


def _orders(rng: np.random.Generator, rows: int, far_share: float) -> tuple[np.ndarray, np.ndarray]:
    """Orders in FEATURE_NAMES order; ``far_share`` of them 10-20 km away, the rest 0.5-4 km."""
    far = rng.random(rows) < far_share
    distance = np.where(far, rng.uniform(10, 20, rows), rng.uniform(0.5, 4, rows))
    features = np.column_stack(
        [
            distance,
            rng.integers(0, 2, rows),
            rng.uniform(10, 80, rows),
            rng.normal(30, 3, rows),
            rng.normal(30, 3, rows),
        ]
    )
    return features, rng.random(rows) < 0.8
