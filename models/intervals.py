"""Split-conformal calibration of quantile-regression intervals (CQR), and the check of their
holdout coverage against the target band."""

from __future__ import annotations

import math
from dataclasses import dataclass

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


COVERAGE_TOLERANCE = 0.02
"""The target band of holdout coverage is the nominal level +- this (0.88-0.92 for 90 %
intervals): the model card flags a coverage outside it, the promotion gate refuses a model whose
coverage is outside it beyond sampling error (:class:`CoverageCheck`)."""
COVERAGE_CONFIDENCE_Z = 1.959963984540054
"""Two-sided 95 % normal quantile of the coverage's Wilson interval."""


def coverage_band(level: float) -> tuple[float, float]:
    """The target band of holdout coverage for intervals of nominal ``level``."""
    return round(level - COVERAGE_TOLERANCE, 6), round(level + COVERAGE_TOLERANCE, 6)


def wilson_interval(hits: int, n: int, z: float = COVERAGE_CONFIDENCE_Z) -> tuple[float, float]:
    """Wilson score interval of a binomial share ``hits / n``.

    Wilson rather than the normal (Wald) interval because coverages sit near 0.9 and holdouts can
    be small: Wald's interval is too narrow there and can pass 1; Wilson's stays in [0, 1] and
    keeps close to its nominal confidence down to a few dozen rows.
    """
    if n <= 0:
        raise ValueError("n must be >= 1")
    share = hits / n
    denominator = 1 + z * z / n
    centre = (share + z * z / (2 * n)) / denominator
    half = z / denominator * math.sqrt(share * (1 - share) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class CoverageCheck:
    """Holdout coverage of a model's intervals against the target band, with sampling error.

    ``outside_band``: the measured share is outside the band (the model card flags it).
    ``refuted``: its 95 % Wilson interval lies entirely outside the band -- the holdout shows
    the intervals miss the target beyond what chance on ``rows`` orders explains (the gate
    refuses). On 100 orders a perfectly calibrated 90 % interval measures outside 0.88-0.92
    40 % of the time, so refusing on the point estimate would refuse good models on small
    holdouts; the Wilson rule refuses a true 0.90 under 1.5 % of the time (50 orders or more)
    and one on the band's edge about 2.5 %, while a true 0.846 is refused 88 % of the time on
    1,000 orders (binomial, exact sums).
    """

    coverage: float
    rows: int
    level: float

    @classmethod
    def of(
        cls, actual: np.ndarray, lower: np.ndarray, upper: np.ndarray, level: float
    ) -> CoverageCheck:
        return cls(coverage(actual, lower, upper), int(actual.size), level)

    @property
    def band(self) -> tuple[float, float]:
        return coverage_band(self.level)

    @property
    def ci(self) -> tuple[float, float]:
        return wilson_interval(round(self.coverage * self.rows), self.rows)

    @property
    def outside_band(self) -> bool:
        low, high = self.band
        return not low <= round(self.coverage, 6) <= high

    @property
    def refuted(self) -> bool:
        (low, high), (ci_low, ci_high) = self.band, self.ci
        return ci_high < low or ci_low > high

    def describe(self) -> str:
        """``0.846 (95 % CI 0.812-0.876; target 0.88-0.92)`` plus a verdict when outside."""
        (low, high), (ci_low, ci_high) = self.band, self.ci
        text = (
            f"{self.coverage:.3f} (95 % CI {ci_low:.3f}-{ci_high:.3f} on {self.rows:,} orders; "
            f"target {low:.2f}-{high:.2f})"
        )
        if self.refuted:
            return f"{text}: OUTSIDE the target band beyond sampling error"
        if self.outside_band:
            return f"{text}: outside the target band, within sampling error of it"
        return text


@dataclass(frozen=True)
class AnswerScore:
    """How one answer (a point and its interval) fared against the actual value reported later:
    what a feedback receipt tells the client and the online error metrics count."""

    absolute_error: float
    """``|actual - predicted|``."""
    within_interval: bool
    """Whether ``lower <= actual <= upper``."""


def score_answer(predicted: float, lower: float, upper: float, actual: float) -> AnswerScore:
    """The :class:`AnswerScore` of one answer given its actual value."""
    return AnswerScore(abs(actual - predicted), lower <= actual <= upper)
