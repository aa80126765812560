"""Conformal calibration reaches its nominal coverage on fresh data."""

import numpy as np
import pytest

from models.intervals import coverage, cqr_correction


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
