"""Drift of live traffic: a window of recent rows per worker, scored against training (PSI)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from models.drift_stats import bin_shares, psi

# Below this many recent rows PSI is mostly sampling noise (10 bins: noise PSI ~ 9 / n).
MIN_ROWS_FOR_PSI = 200


class DriftMonitor:
    """Keeps the last ``window`` rows of features and predictions and scores their PSI."""

    def __init__(
        self,
        reference: Mapping[str, Mapping[str, Sequence[float]]],
        feature_names: Sequence[str],
        window: int,
    ) -> None:
        self._names = [*feature_names, "predicted_delivery_time_min"]
        missing = [name for name in self._names if name not in reference]
        if missing:
            raise ValueError(f"reference statistics lack {missing}")
        self._edges = [
            np.asarray(reference[n]["inner_edges"], dtype=np.float64) for n in self._names
        ]
        self._expected = [np.asarray(reference[n]["shares"], dtype=np.float64) for n in self._names]
        self._rows = np.zeros((window, len(self._names)))
        self._next = 0
        self._filled = 0

    def observe(self, features: np.ndarray, predictions: np.ndarray) -> None:
        """Add rows (features in model order, plus their point predictions) to the window."""
        block = np.column_stack([features, predictions])[-len(self._rows) :]
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
