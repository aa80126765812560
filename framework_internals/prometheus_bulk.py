"""Touch-point 7: prometheus-client's ``Histogram`` and ``Summary`` child internals (bucket, count
and sum values), so that a batch is observed with one write per bucket instead of one per value."""

from __future__ import annotations

from typing import Any

import numpy as np


def observe_many(histogram: Any, values: np.ndarray) -> None:
    """``histogram.observe(v)`` for every ``v`` in ``values``, with one write per bucket.

    ``histogram`` is a labelled ``prometheus_client.Histogram`` child. Like ``observe``, each
    value counts in the first bucket whose upper bound is >= the value (buckets are stored
    non-cumulatively and summed when collected).
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size == 0:
        return
    bounds = np.asarray(histogram._upper_bounds, dtype=np.float64)
    counts = np.bincount(np.searchsorted(bounds, values, side="left"), minlength=len(bounds))
    histogram._sum.inc(float(values.sum()))
    for bucket, count in zip(histogram._buckets, counts.tolist(), strict=False):
        if count:
            bucket.inc(count)


def observe_total(summary: Any, count: int, total: float) -> None:
    """``summary.observe(v)`` for ``count`` values summing to ``total``: two writes, however
    many values (``summary`` is a labelled ``prometheus_client.Summary`` child)."""
    if count:
        summary._count.inc(count)
        summary._sum.inc(total)
