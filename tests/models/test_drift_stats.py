"""PSI: near zero for traffic like the reference, large for a shifted feature."""

import numpy as np
import pytest

from models.drift_stats import bin_shares, category_bins, psi, reference_bins


def test_reference_bins_are_deciles_for_continuous_and_values_for_discrete() -> None:
    rng = np.random.default_rng(0)
    continuous = reference_bins(rng.normal(size=10_000))
    assert len(continuous["inner_edges"]) == 9
    assert continuous["shares"] == pytest.approx([0.1] * 10, abs=0.002)
    discrete = reference_bins(np.array([0, 1, 1, 1] * 100, dtype=float))
    assert discrete == {"inner_edges": [0.5], "shares": [0.25, 0.75]}


def test_values_outside_the_training_range_fall_in_the_open_outer_bins() -> None:
    shares = bin_shares(np.array([-100.0, 0.5, 100.0]), [0.0, 1.0])
    assert list(shares) == pytest.approx([1 / 3, 1 / 3, 1 / 3])


def test_psi_is_small_for_the_same_distribution_and_large_for_a_shift() -> None:
    rng = np.random.default_rng(1)
    reference = reference_bins(rng.lognormal(1.0, 0.6, size=20_000))
    same = bin_shares(rng.lognormal(1.0, 0.6, size=2_000), reference["inner_edges"])
    shifted = bin_shares(rng.lognormal(1.0, 0.6, size=2_000) * 2, reference["inner_edges"])
    assert psi(same, np.array(reference["shares"])) < 0.05
    assert psi(shifted, np.array(reference["shares"])) > 0.2


def test_category_bins_are_one_share_per_category() -> None:
    codes = np.array([0, 0, 1, 3, 3, 3, 3, 3], dtype=float)
    bins = category_bins(codes, 4)
    assert bins["inner_edges"] == [0.5, 1.5, 2.5]
    assert bins["shares"] == [0.25, 0.125, 0.0, 0.625]
    moved = bin_shares(np.array([2.0] * 8), bins["inner_edges"])
    assert psi(moved, np.array(bins["shares"])) > 1
