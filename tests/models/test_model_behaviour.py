"""The trained model: meets its accuracy and coverage targets, and behaves sensibly.

Directional tests (Made-With-ML style): more distance or a peak hour never shortens the
prediction. Invariance: a row's prediction does not depend on what else is in the batch.
"""

import numpy as np
import pytest

from models.contract import default_contract

FEATURE_NAMES = default_contract().feature_names

BASE = dict(zip(FEATURE_NAMES, [3.0, 0, 30.0, 32.0, 32.0], strict=True))


def _rows(**changes: list[float]) -> np.ndarray:
    n = len(next(iter(changes.values())))
    columns = {name: changes.get(name, [BASE[name]] * n) for name in FEATURE_NAMES}
    return np.column_stack([columns[name] for name in FEATURE_NAMES]).astype(float)


def test_holdout_mae_is_within_5_percent_of_the_bayes_floor(registered) -> None:  # type: ignore[no-untyped-def]
    metrics = registered.result.metrics
    assert metrics["holdout_mae"] <= 1.05 * metrics["bayes_floor_mae"]
    assert (
        metrics["holdout_mae"]
        < metrics["baseline_distance_linear_mae"]
        < metrics["baseline_mean_mae"]
    )


def test_interval_coverage_is_calibrated(registered) -> None:  # type: ignore[no-untyped-def]
    assert 0.88 <= registered.result.metrics["interval_coverage"] <= 0.92


def test_longer_distance_never_predicts_a_shorter_delivery(registered) -> None:  # type: ignore[no-untyped-def]
    distances = [0.5, 1, 2, 4, 8, 12, 20]
    points = registered.result.model.predict_rows(_rows(distance_km=distances))[:, 0]
    assert np.all(np.diff(points) >= 0)
    assert points[-1] > points[0] + 10


def test_peak_hour_predicts_a_longer_delivery(registered) -> None:  # type: ignore[no-untyped-def]
    off_peak, peak = registered.result.model.predict_rows(_rows(is_peak_hour=[0, 1]))[:, 0]
    assert peak > off_peak


def test_interval_contains_the_point_and_is_wider_for_long_deliveries(registered) -> None:  # type: ignore[no-untyped-def]
    out = registered.result.model.predict_rows(_rows(distance_km=[1.0, 15.0]))
    assert np.all((out[:, 1] <= out[:, 0]) & (out[:, 0] <= out[:, 2]) & (out[:, 1] >= 0))
    widths = out[:, 2] - out[:, 1]
    assert widths[1] > widths[0]


@pytest.mark.parametrize("batch_size", [1, 7, 256])
def test_prediction_does_not_depend_on_the_rest_of_the_batch(registered, batch_size: int) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(batch_size)
    others = _rows(distance_km=list(rng.uniform(0.5, 20, batch_size)))
    target = _rows(distance_km=[4.2])
    alone = registered.result.model.predict_rows(target)
    mixed = registered.result.model.predict_rows(np.vstack([others, target]))[-1:]
    np.testing.assert_allclose(mixed, alone, rtol=0, atol=1e-9)
