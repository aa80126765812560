"""The generator: deterministic, realistic shapes, and noise of the size it claims."""

import numpy as np

from models.training.synthetic_orders import (
    PEAK_HOURS,
    expected_delivery_time,
    generate_order_history,
    noise_std,
)


def test_same_seed_same_history_other_seed_other_history() -> None:
    _, first = generate_order_history(2_000, seed=1)
    _, again = generate_order_history(2_000, seed=1)
    _, other = generate_order_history(2_000, seed=2)
    assert first.equals(again)
    assert not first["delivery_time_minutes"].equals(other["delivery_time_minutes"])


def test_orders_are_time_sorted_and_in_plausible_ranges() -> None:
    _, orders = generate_order_history(20_000, seed=3)
    assert orders["order_ts"].is_monotonic_increasing
    assert orders["distance_km"].between(0.2, 25).all()
    assert orders["order_value"].between(3, 400).all()
    assert set(orders["is_peak_hour"].unique()) == {0, 1}
    assert (orders["is_peak_hour"] == orders["order_ts"].dt.hour.isin(PEAK_HOURS)).all()
    assert orders["delivery_time_minutes"].between(1, 300).all()


def test_noise_around_the_expectation_has_the_size_the_generator_claims() -> None:
    _, orders = generate_order_history(50_000, seed=4)
    standardised = (
        orders["delivery_time_minutes"] - orders["expected_delivery_time_min"]
    ) / orders["noise_std_min"]
    assert abs(standardised.mean()) < 0.02
    assert abs(standardised.std() - 1.0) < 0.02


def test_expectation_grows_with_distance_peak_and_value_and_noise_with_expectation() -> None:
    base = dict(
        restaurant_prep_min=np.array([12.0]),
        driver_speed_kmh=np.array([25.0]),
        distance_km=np.array([3.0]),
        is_peak_hour=np.array([0]),
        order_value=np.array([20.0]),
    )
    reference = expected_delivery_time(**base)[0]
    for name, value in [
        ("distance_km", 6.0),
        ("is_peak_hour", 1),
        ("order_value", 80.0),
        ("restaurant_prep_min", 20.0),
    ]:
        assert expected_delivery_time(**{**base, name: np.array([value])})[0] > reference, name
    assert expected_delivery_time(**{**base, "driver_speed_kmh": np.array([35.0])})[0] < reference
    assert noise_std(np.array([60.0]))[0] > noise_std(np.array([20.0]))[0]
