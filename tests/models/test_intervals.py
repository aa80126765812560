"""Conformal calibration reaches its nominal coverage on fresh data."""

import numpy as np
import pytest

from models.intervals import (
    MIN_GROUP_CALIBRATION_ROWS,
    AnswerScore,
    category_corrections,
    coverage,
    cqr_correction,
    score_answer,
)
from models.model import DeliveryTimeModel


def test_correction_makes_a_too_narrow_interval_cover_the_nominal_share() -> None:
    rng = np.random.default_rng(0)
    calibration, fresh = rng.normal(size=5_000), rng.normal(size=20_000)
    narrow_lower, narrow_upper = -1.0, 1.0  # covers ~68 %
    q = cqr_correction(calibration, np.full(5_000, narrow_lower), np.full(5_000, narrow_upper), 0.9)
    assert q > 0
    covered = coverage(fresh, np.full(20_000, narrow_lower - q), np.full(20_000, narrow_upper + q))
    assert 0.89 <= covered <= 0.91


def test_correction_shrinks_an_interval_that_is_too_wide() -> None:
    rng = np.random.default_rng(1)
    actual = rng.normal(size=5_000)
    assert cqr_correction(actual, np.full(5_000, -5.0), np.full(5_000, 5.0), 0.9) < 0


@pytest.mark.parametrize("level", [0.0, 1.0, -0.1, 1.5])
def test_invalid_level_is_rejected(level: float) -> None:
    with pytest.raises(ValueError, match="level"):
        cqr_correction(np.zeros(3), np.zeros(3), np.zeros(3), level)


def test_empty_calibration_set_is_rejected() -> None:
    with pytest.raises(ValueError, match="empty"):
        cqr_correction(np.array([]), np.array([]), np.array([]), 0.9)


def _grouped(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Actuals around 0 with noise 1 for code 0 and 3 for code 1 (a rarer, noisier value), and
    the codes; the quantile models' interval is +-1.645 for both (it ignores the code)."""
    rng = np.random.default_rng(seed)
    codes = (rng.random(rows) < 0.15).astype(np.float64)
    return rng.normal(size=rows) * np.where(codes == 1, 3.0, 1.0), codes


def test_a_noisier_category_value_gets_its_own_wider_correction() -> None:
    actual, codes = _grouped(20_000, seed=3)
    lower, upper = np.full(len(actual), -1.645), np.full(len(actual), 1.645)
    overall = cqr_correction(actual, lower, upper, 0.9)
    ((column, table),) = category_corrections(
        actual, lower, upper, {2: codes}, {2: 2}, 0.9, overall
    )
    assert column == 2 and table[1] > overall > table[0]

    fresh, fresh_codes = _grouped(40_000, seed=4)
    widen = np.asarray(table)[fresh_codes.astype(int)]
    one_correction = coverage(fresh[fresh_codes == 1], -1.645 - overall, 1.645 + overall)
    own = coverage(
        fresh[fresh_codes == 1], -1.645 - widen[fresh_codes == 1], 1.645 + widen[fresh_codes == 1]
    )
    assert one_correction < 0.87  # what one overall correction leaves the noisy value
    assert 0.88 <= own <= 0.92


def test_a_value_with_too_few_calibration_rows_takes_the_overall_correction() -> None:
    actual = np.zeros(MIN_GROUP_CALIBRATION_ROWS + 5)
    codes = np.zeros(len(actual))
    codes[:5] = 1.0
    bounds = np.zeros(len(actual))
    ((_, table),) = category_corrections(actual, bounds, bounds, {0: codes}, {0: 3}, 0.9, 7.0)
    assert table[1] == 7.0 and table[2] == 7.0 and table[0] == 0.0


def test_a_row_is_widened_by_the_largest_correction_of_its_codes() -> None:
    model = DeliveryTimeModel(
        point_model=None,  # type: ignore[arg-type]
        lower_model=None,  # type: ignore[arg-type]
        upper_model=None,  # type: ignore[arg-type]
        interval_correction=1.0,
        feature_names=("a", "b", "c"),
        category_corrections=((0, (0.5, 4.0)), (1, (2.0, 0.1))),
    )
    features = np.array([[0, 0, 9.0], [1, 1, 9.0], [0, 1, 9.0], [np.nan, 1, 9.0]])
    np.testing.assert_array_equal(model.corrections(features), [2.0, 4.0, 0.5, 1.0])
    raw = np.array([[10.0, 8.0, 12.0]] * 4)
    out = model.combine_stacked(raw, features)
    np.testing.assert_array_equal(out[:, 1], [6.0, 4.0, 7.5, 7.0])
    np.testing.assert_array_equal(out[:, 2], [14.0, 16.0, 12.5, 13.0])


def test_an_answer_is_scored_by_its_error_and_whether_its_interval_held_the_actual() -> None:
    assert score_answer(30.0, 25.0, 36.0, 27.5) == AnswerScore(2.5, True)
    assert score_answer(30.0, 25.0, 36.0, 40.0) == AnswerScore(10.0, False)
    assert score_answer(30.0, 25.0, 36.0, 36.0).within_interval  # the bounds are inside
