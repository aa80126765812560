"""Split-conformal calibration of quantile-regression intervals (CQR)."""

from __future__ import annotations

import math

import numpy as np


def cqr_correction(actual: np.ndarray, lower: np.ndarray, upper: np.ndarray, level: float) -> float:
    """Minutes to widen ``[lower, upper]`` by so that it covers ``level`` of new rows.

    Conformity score ``max(lower - y, y - upper)``; the correction is its
    ``ceil((n + 1) * level) / n`` empirical quantile on a calibration set the quantile models
    never saw, which gives finite-sample marginal coverage >= ``level``.
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    scores = np.maximum(lower - actual, actual - upper)
    n = scores.size
    if n == 0:
        raise ValueError("empty calibration set")
    rank = min(math.ceil((n + 1) * level), n)
    return float(np.sort(scores)[rank - 1])


def coverage(actual: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> float:
    """Share of ``actual`` inside its interval."""
    return float(np.mean((actual >= lower) & (actual <= upper)))
