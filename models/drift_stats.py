"""Distribution statistics for drift: reference bins (written at training) and the PSI.

Training stores ``reference_bins`` of every feature and of the predictions in the model's metadata;
the service's drift monitor (``serving.telemetry.drift_monitor``) scores recent traffic against
them with ``bin_shares`` and ``psi``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

_EPSILON = 1e-4  # share given to empty bins so log() stays finite


def reference_bins(values: np.ndarray, n_bins: int = 10) -> dict[str, list[float]]:
    """Inner bin edges (quantiles) and the share of ``values`` in each of the len+1 bins.

    Outer bins are open-ended, so traffic outside the training range still lands in a bin.
    Discrete features (few distinct values, e.g. a 0/1 flag) get one bin per value.
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


def category_bins(codes: np.ndarray, levels: int) -> dict[str, list[float]]:
    """:func:`reference_bins` of a category's codes ``0..levels-1``: one bin per category, so
    the PSI compares category shares (however many categories there are)."""
    inner = np.arange(levels - 1, dtype=np.float64) + 0.5
    shares = bin_shares(codes, inner)
    return {
        "inner_edges": [float(e) for e in inner],
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
