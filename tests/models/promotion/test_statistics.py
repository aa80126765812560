"""The streaming statistics on their own: a running mean merged batch by batch, and a reservoir
that keeps a fixed, uniform, seeded sample."""

from __future__ import annotations

import numpy as np
import pytest

from models.promotion.statistics import Reservoir, RunningMean


def test_running_mean_merges_batches_like_one_pass() -> None:
    values = np.random.default_rng(0).gamma(2.0, 3.0, 10_001) + 1e6  # a large offset: no cancelling
    running = RunningMean()
    for part in np.array_split(values, 37):
        running.add(part)
    running.add(np.array([]))
    assert running.count == values.size
    assert running.mean == pytest.approx(values.mean(), rel=1e-12)
    assert running.sample_variance == pytest.approx(values.var(ddof=1), rel=1e-9)


def test_a_reservoir_keeps_a_fixed_uniform_sample() -> None:
    small = Reservoir(10, 1)
    small.add(np.arange(6, dtype=np.float64).reshape(-1, 1))
    assert small.sample[:, 0].tolist() == [0, 1, 2, 3, 4, 5]  # below capacity: everything

    reservoir = Reservoir(2_000, 1, seed=5)
    before = reservoir.nbytes
    stream = np.arange(200_000, dtype=np.float64)
    for part in np.array_split(stream, 333):
        reservoir.add(part.reshape(-1, 1))
    sample = reservoir.sample[:, 0]
    assert reservoir.nbytes == before and len(sample) == 2_000 and reservoir.seen == 200_000
    assert len(np.unique(sample)) == 2_000  # each stream item at most once
    # Uniform over the stream: each tenth holds ~200 of the 2,000 (binomial sd ~13).
    counts = np.bincount((sample // 20_000).astype(int), minlength=10)
    assert counts.min() > 150 and counts.max() < 250, counts
    again = Reservoir(2_000, 1, seed=5)
    for part in np.array_split(stream, 333):
        again.add(part.reshape(-1, 1))
    assert np.array_equal(again.sample, reservoir.sample)  # seeded: a rerun gives the same
