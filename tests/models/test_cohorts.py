"""Cohorts from the contract: a fixed set of names; every row falls in exactly one cohort per
dimension, on the same bands as training's segment report."""

import numpy as np

from models.cohorts import Cohorts
from models.contract import default_contract, parse_contract
from tests.models.training.contract_orders import CONTRACT_YAML


def _rows(distance_km: list[float], peak: list[int]) -> np.ndarray:
    n = len(distance_km)
    return np.column_stack(
        [distance_km, peak, np.full(n, 25.0), np.full(n, 30.0), np.full(n, 30.0)]
    )


def test_the_default_contract_gives_todays_eight_cohorts() -> None:
    cohorts = Cohorts(default_contract())
    assert cohorts.dimensions == {
        "distance": ("distance_0_2km", "distance_2_5km", "distance_5_10km", "distance_10km_plus"),
        "peak": ("off_peak", "peak"),
        "entity": ("entity_known", "entity_unknown"),
    }
    assert len(cohorts.names) == 8


def test_each_row_is_in_one_cohort_per_dimension_and_edges_belong_to_the_band_above() -> None:
    cohorts = Cohorts(default_contract())
    features = _rows([0.1, 1.99, 2.0, 4.9, 5.0, 9.99, 10.0, 49.0], [0, 1, 0, 1, 0, 1, 0, 1])
    known = np.array([True, False] * 4)
    names = [[cohorts.names[c] for c in row] for row in cohorts.codes(features, known).tolist()]
    assert names[0] == ["distance_0_2km", "off_peak", "entity_known"]
    assert names[1] == ["distance_0_2km", "peak", "entity_unknown"]
    assert [row[0] for row in names] == [
        "distance_0_2km",
        "distance_0_2km",
        "distance_2_5km",
        "distance_2_5km",
        "distance_5_10km",
        "distance_5_10km",
        "distance_10km_plus",
        "distance_10km_plus",
    ]


def test_a_category_cohort_has_one_cohort_per_level() -> None:
    contract = parse_contract(
        CONTRACT_YAML.replace(
            "    values: [clear, rain, storm]\n    example: clear",
            "    values: [clear, rain, storm]\n    example: clear\n    cohort:\n"
            "      dimension: weather",
        )
    )
    cohorts = Cohorts(contract)
    assert cohorts.dimensions["weather"] == ("weather_clear", "weather_rain", "weather_storm")
    features = np.zeros((3, len(contract.feature_names)))
    features[:, contract.feature_names.index("weather")] = [2, 0, 1]
    codes = cohorts.codes(features, np.ones(3, dtype=bool))
    weather = list(cohorts.dimensions).index("weather")
    assert [cohorts.names[c] for c in codes[:, weather]] == [
        "weather_storm",
        "weather_clear",
        "weather_rain",
    ]


def test_a_shift_in_one_cohort_shows_in_that_cohort_only() -> None:
    cohorts = Cohorts(default_contract())
    rng = np.random.default_rng(4)
    n = 20_000
    features = _rows(list(rng.uniform(0.5, 15, n)), list(rng.integers(0, 2, n)))
    known = rng.random(n) < 0.7
    points = 15 + 2 * features[:, 0] + rng.normal(0, 2, n)
    reference = cohorts.reference(features, points, known)
    assert abs(sum(reference["shares"]["peak"]) - 1) < 1e-6
    # Live: the same orders, but peak predictions 10 minutes later.
    live_points = points + 10 * (features[:, 1] == 1)
    cohort_psi, mix_psi = cohorts.drift(reference, cohorts.codes(features, known), live_points)
    assert cohort_psi["peak"] > 0.5 and cohort_psi["off_peak"] < 0.01
    assert max(mix_psi.values()) < 1e-6  # the mix did not move
    # A cohort with too few live rows is not scored (its PSI would be noise).
    few = cohorts.codes(features[:100], known[:100])
    assert cohorts.drift(reference, few, live_points[:100])[0] == {}
