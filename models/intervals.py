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


MIN_GROUP_CALIBRATION_ROWS = 100
"""A category value's own correction needs this many calibration rows; fewer, and its
``ceil((n + 1) * level)``-th score is too noisy to trust (the overall correction applies)."""


def category_corrections(
    actual: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    codes: dict[int, np.ndarray],
    levels: dict[int, int],
    level: float,
    overall: float,
) -> tuple[tuple[int, tuple[float, ...]], ...]:
    """Per category input, each code's own CQR correction (group-conditional, "Mondrian"
    conformal): ``codes[column]`` are the calibration rows' codes of that input.

    A row is then widened by the largest correction of its codes (:class:`DeliveryTimeModel`),
    so every value of every category keeps its own finite-sample coverage >= ``level`` -- one
    overall correction lets a rare, noisier value (stormy weather, a traffic jam) fall short
    while the others over-cover. Codes with fewer than :data:`MIN_GROUP_CALIBRATION_ROWS`
    calibration rows take ``overall``.
    """
    tables = []
    for column, column_codes in codes.items():
        table = []
        for code in range(levels[column]):
            member = column_codes == code
            if int(member.sum()) >= MIN_GROUP_CALIBRATION_ROWS:
                table.append(cqr_correction(actual[member], lower[member], upper[member], level))
            else:
                table.append(overall)
        tables.append((column, tuple(table)))
    return tuple(tables)
