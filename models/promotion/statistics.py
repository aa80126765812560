"""Streaming statistics for comparing two models: a running mean and variance, a uniform
reservoir sample, and the mean of paired differences with its 95 % confidence interval.

Pure arithmetic in O(1) memory per stream, shared by the live comparison
(``models.promotion.live_builder``) and the promotion gate's baseline checks
(``models.promotion.criteria``).

**Confidence intervals**: normal approximation on the paired per-row differences, mean +- 1.96
sample standard deviations / sqrt(n). Not given (and no significance claimed) below
:data:`MIN_PAIRS_FOR_CI` pairs, where the normal approximation of a mean of skewed errors is
not trustworthy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

CONFIDENCE_Z = 1.959963984540054
"""Two-sided 95 % quantile of the standard normal."""
MIN_PAIRS_FOR_CI = 30
"""Fewest labelled shadowed rows for which a confidence interval (and so a significance claim)
is given."""
CI_METHOD = (
    "normal approximation on the paired per-row differences (mean +- 1.96 s / sqrt(n)); "
    f"not claimed below {MIN_PAIRS_FOR_CI} pairs"
)


class RunningMean:
    """Count, mean and variance of a stream of numbers in O(1) memory (batches are merged with
    Chan et al.'s pairwise update, which stays accurate where sum-of-squares would cancel)."""

    def __init__(self) -> None:
        self.count = 0
        self.mean = 0.0
        self._squared_deviations = 0.0

    def add(self, values: np.ndarray) -> None:
        """Fold ``values`` (1-D) into the running figures."""
        n = int(values.size)
        if n == 0:
            return
        batch_mean = float(values.mean())
        batch_squared = float(np.sum((values - batch_mean) ** 2))
        total = self.count + n
        delta = batch_mean - self.mean
        self.mean += delta * n / total
        self._squared_deviations += batch_squared + delta * delta * self.count * n / total
        self.count = total

    @property
    def sample_variance(self) -> float:
        """Variance with Bessel's correction (0 for fewer than two values)."""
        if self.count < 2:
            return 0.0
        return max(self._squared_deviations / (self.count - 1), 0.0)


class Reservoir:
    """A uniform sample of at most ``capacity`` rows (``width`` floats each) of a stream:
    algorithm R, vectorised per batch, with a seeded generator."""

    def __init__(self, capacity: int, width: int, seed: int = 0) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.capacity = capacity
        self.seen = 0
        self._sample = np.empty((capacity, width), dtype=np.float64)
        self._rng = np.random.default_rng(seed)

    def add(self, rows: np.ndarray) -> None:
        """Offer every row of ``rows`` (shape (n, width)) to the sample."""
        n = len(rows)
        if n == 0:
            return
        filled = min(self.seen, self.capacity)
        take = min(self.capacity - filled, n)
        self._sample[filled : filled + take] = rows[:take]
        rest = rows[take:]
        if len(rest):
            # The item with 0-based stream index i replaces a uniform slot of [0, i] if that slot
            # is inside the sample: kept with probability capacity / (i + 1), as in algorithm R.
            index = np.arange(self.seen + take, self.seen + n)
            slots = self._rng.integers(0, index + 1)
            kept = slots < self.capacity
            slots, candidates = slots[kept], rest[kept]
            # Sequentially a later item overwrites an earlier one in the same slot: keep the last
            # (numpy's assignment with repeated indices does not promise which one wins).
            last_first = slots[::-1]
            unique_slots, position = np.unique(last_first, return_index=True)
            self._sample[unique_slots] = candidates[::-1][position]
        self.seen += n

    @property
    def sample(self) -> np.ndarray:
        """The rows kept (all of them while fewer than ``capacity`` were offered)."""
        return self._sample[: min(self.seen, self.capacity)]

    @property
    def nbytes(self) -> int:
        """Memory the sample holds, whatever the stream's length."""
        return int(self._sample.nbytes)


@dataclass(frozen=True)
class PairedDifference:
    """The mean of per-row differences (challenger - champion) and its 95 % confidence interval."""

    pairs: int
    mean: float | None
    """None without pairs."""
    ci_low: float | None
    """None below :data:`MIN_PAIRS_FOR_CI` pairs."""
    ci_high: float | None

    @classmethod
    def of(cls, differences: RunningMean) -> PairedDifference:
        """The difference and interval of a stream of paired differences (see :data:`CI_METHOD`)."""
        n = differences.count
        if n == 0:
            return cls(0, None, None, None)
        if n < MIN_PAIRS_FOR_CI:
            return cls(n, differences.mean, None, None)
        half_width = CONFIDENCE_Z * math.sqrt(differences.sample_variance / n)
        return cls(
            n, differences.mean, differences.mean - half_width, differences.mean + half_width
        )

    @property
    def significant(self) -> bool | None:
        """Whether the interval excludes 0; None when no interval is claimed."""
        if self.ci_low is None or self.ci_high is None:
            return None
        return self.ci_low > 0 or self.ci_high < 0
