"""Drift of live traffic: a window of recent rows per worker, scored against training (PSI).

Each input feature is scored against the bins training stored for it: quantile bins for a
number, one bin per value for a category (its PSI then compares category shares), so the same
code scores both. Cohorts are the served contract's (``models.cohorts.Cohorts``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from models.cohorts import Cohorts
from models.drift_stats import bin_shares, psi

# Below this many recent rows PSI is mostly sampling noise (10 bins: noise PSI ~ 9 / n).
MIN_ROWS_FOR_PSI = 200


class DriftMonitor:
    """Keeps the last ``window`` rows of features, predictions and cohorts and scores their PSI
    (per feature, for the prediction, and per cohort when training recorded a cohort reference)."""

    def __init__(
        self,
        reference: Mapping[str, Mapping[str, Sequence[float]]],
        feature_names: Sequence[str],
        window: int,
        cohort_reference: Mapping[str, Any] | None = None,
        cohorts: Cohorts | None = None,
    ) -> None:
        """``cohorts`` codes the rows :meth:`observe` gets (with ``cohort_reference``, the
        training's cohort shares and bins, it scores cohort drift)."""
        self._names = [*feature_names, "predicted_delivery_time_min"]
        missing = [name for name in self._names if name not in reference]
        if missing:
            raise ValueError(f"reference statistics lack {missing}")
        self._edges = [
            np.asarray(reference[n]["inner_edges"], dtype=np.float64) for n in self._names
        ]
        self._expected = [np.asarray(reference[n]["shares"], dtype=np.float64) for n in self._names]
        # Models registered before cohorts were recorded have no cohort reference: no cohort PSI.
        self._cohort_reference = cohort_reference if cohorts is not None else None
        self._cohorts = cohorts
        dimensions = len(cohorts.dimensions) if cohorts is not None else 0
        self._rows = np.zeros((window, len(self._names) + dimensions))
        self._next = 0
        self._filled = 0

    def observe(self, features: np.ndarray, predictions: np.ndarray, cohorts: np.ndarray) -> None:
        """Add rows (features in model order, their point predictions and their cohort codes,
        ``Cohorts.codes``) to the window."""
        if self._cohorts is None:
            cohorts = cohorts[:, :0]
        kept = slice(-len(self._rows), None)  # only what the window keeps is stacked
        block = np.column_stack([features[kept], predictions[kept], cohorts[kept]])
        end = self._next + len(block)
        if end <= len(self._rows):
            self._rows[self._next : end] = block
        else:
            split = len(self._rows) - self._next
            self._rows[self._next :] = block[:split]
            self._rows[: end - len(self._rows)] = block[split:]
        self._next = end % len(self._rows)
        self._filled = min(self._filled + len(block), len(self._rows))

    def scores(self) -> dict[str, float] | None:
        """PSI per feature and for the prediction, or None until the window has enough rows."""
        if self._filled < MIN_ROWS_FOR_PSI:
            return None
        window = self._rows[: self._filled]
        return {
            name: psi(bin_shares(window[:, i], self._edges[i]), self._expected[i])
            for i, name in enumerate(self._names)
        }

    def cohort_scores(self) -> tuple[dict[str, float], dict[str, float]]:
        """(prediction PSI per cohort, mix PSI per dimension) of the window; empty until the
        window has enough rows or when the model has no cohort reference."""
        if (
            self._filled < MIN_ROWS_FOR_PSI
            or self._cohort_reference is None
            or self._cohorts is None
        ):
            return {}, {}
        window = self._rows[: self._filled]
        codes = window[:, len(self._names) :].astype(np.int64)
        return self._cohorts.drift(self._cohort_reference, codes, window[:, len(self._names) - 1])
