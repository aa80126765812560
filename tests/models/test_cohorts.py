"""Cohorts: a fixed set of 8 names; every row falls in exactly one cohort per dimension, on the
same bands as training's segment report."""

import numpy as np

from models.cohorts import COHORTS, DIMENSIONS, cohort_codes, cohort_drift, cohort_reference
from models.training.fit import DISTANCE_BANDS_KM


def _rows(distance_km: list[float], peak: list[int]) -> np.ndarray:
    n = len(distance_km)
    return np.column_stack(
        [distance_km, peak, np.full(n, 25.0), np.full(n, 30.0), np.full(n, 30.0)]
    )


def test_each_row_is_in_one_cohort_per_dimension_and_edges_belong_to_the_band_above() -> None:
    features = _rows([0.1, 1.99, 2.0, 4.9, 5.0, 9.99, 10.0, 49.0], [0, 1, 0, 1, 0, 1, 0, 1])
    known = np.array([True, False] * 4)
    names = [[COHORTS[c] for c in row] for row in cohort_codes(features, known).tolist()]
    assert names[0] == ["off_peak", "distance_0_2km", "entity_known"]
    assert names[1] == ["peak", "distance_0_2km", "entity_unknown"]
    assert [row[1] for row in names] == [
        "distance_0_2km",
        "distance_0_2km",
        "distance_2_5km",
        "distance_2_5km",
        "distance_5_10km",
        "distance_5_10km",
        "distance_10km_plus",
        "distance_10km_plus",
    ]
    # The training report cuts at the same edges.
    assert DISTANCE_BANDS_KM[1:-1] == (2.0, 5.0, 10.0)
    assert len(COHORTS) == 8 and sum(len(c) for c in DIMENSIONS.values()) == 8


def test_a_shift_in_one_cohort_shows_in_that_cohort_only() -> None:
    rng = np.random.default_rng(4)
    n = 20_000
    features = _rows(list(rng.uniform(0.5, 15, n)), list(rng.integers(0, 2, n)))
    known = rng.random(n) < 0.7
    points = 15 + 2 * features[:, 0] + rng.normal(0, 2, n)
    reference = cohort_reference(features, points, known)
    assert abs(sum(reference["shares"]["peak"]) - 1) < 1e-6
    # Live: the same orders, but peak predictions 10 minutes later.
    live_points = points + 10 * (features[:, 1] == 1)
    cohort_psi, mix_psi = cohort_drift(reference, cohort_codes(features, known), live_points)
    assert cohort_psi["peak"] > 0.5 and cohort_psi["off_peak"] < 0.01
    assert max(mix_psi.values()) < 1e-6  # the mix did not move
    # A cohort with too few live rows is not scored (its PSI would be noise).
    few = cohort_codes(features[:100], known[:100])
    assert cohort_drift(reference, few, live_points[:100])[0] == {}
