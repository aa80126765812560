"""Population Stability Index of recent traffic against the training reference."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

# Below this many recent rows PSI is mostly sampling noise (10 bins: noise PSI ~ 9 / n).
MIN_ROWS_FOR_PSI = 200
_EPSILON = 1e-4  # share given to empty bins so log() stays finite


def reference_bins(values: np.ndarray, n_bins: int = 10) -> dict[str, list[float]]:
    """Inner bin edges (quantiles) and the share of ``values`` in each of the len+1 bins.

    Outer bins are open-ended, so traffic outside the training range still lands in a bin.
    Discrete features (few distinct values, e.g. ``is_peak_hour``) get one bin per value.
    """
    distinct = np.unique(values)
    if len(distinct) <= n_bins:
        inner = (distinct[:-1] + distinct[1:]) / 2
    else:
        inner = np.unique(np.quantile(values, np.linspace(0, 1, n_bins + 1)[1:-1]))
    shares = bin_shares(values, inner)
    return {
        "inner_edges": [round(float(e), 6) for e in inner],
        "shares": [round(float(s), 6) for s in shares],
    }


def bin_shares(values: np.ndarray, inner_edges: Sequence[float] | np.ndarray) -> np.ndarray:
    """Share of ``values`` in each bin defined by ``inner_edges`` (len(inner_edges) + 1 bins)."""
    edges = np.asarray(inner_edges, dtype=np.float64)
    counts = np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1)
    return counts / max(len(values), 1)


def psi(actual: np.ndarray, expected: np.ndarray) -> float:
    """PSI = sum((a - e) * ln(a / e)); > 0.2 is the usual 'significant shift' threshold."""
    a = np.clip(actual, _EPSILON, None)
    e = np.clip(np.asarray(expected, dtype=np.float64), _EPSILON, None)
    return float(np.sum((a - e) * np.log(a / e)))


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
