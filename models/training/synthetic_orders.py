"""Seeded generator of a synthetic but realistic food-delivery order history.

The world has restaurants with their own preparation-time profile and drivers with their own
speed. An order's delivery time is

    prep    = restaurant_prep_min * (1 + PEAK_PREP_SLOWDOWN * is_peak)
              + VALUE_PREP_MIN * log1p(order_value / 15)
    travel  = distance_km / driver_speed_kmh * 60 * (1 + PEAK_TRAFFIC_SLOWDOWN * is_peak)
    mean    = prep + travel + HANDOVER_MIN
    actual  = mean + Normal(0, NOISE_BASE_MIN + NOISE_SLOPE * mean)

Because the generator knows ``mean`` (the true conditional expectation) and the noise law, the
best any model can do is the MAE of ``mean`` itself: the Bayes floor reported by ``train.py``.
The noise is symmetric, so the conditional mean is also the conditional median (the MAE-optimal
point); it grows with the mean, so good prediction intervals must be wider for long deliveries.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

PEAK_HOURS = frozenset({11, 12, 13, 18, 19, 20})
PEAK_PREP_SLOWDOWN = 0.30
PEAK_TRAFFIC_SLOWDOWN = 0.35
VALUE_PREP_MIN = 2.0
HANDOVER_MIN = 4.0
NOISE_BASE_MIN = 2.0
NOISE_SLOPE = 0.10
MIN_DELIVERY_MIN = 1.0

# Relative order volume by hour of day (lunch and dinner peaks, nothing 02:00-07:00).
_HOUR_WEIGHTS = np.array(
    [2, 1, 0, 0, 0, 0, 0, 1, 3, 4, 6, 12, 14, 11, 6, 5, 6, 9, 15, 16, 13, 8, 5, 3], dtype=float
)


@dataclass(frozen=True)
class World:
    """The latent entities: who cooks how fast and who drives how fast."""

    restaurant_prep_min: pd.Series  # index restaurant_id
    driver_speed_kmh: pd.Series  # index driver_id


def make_world(n_restaurants: int, n_drivers: int, rng: np.random.Generator) -> World:
    """Draw restaurants (prep-time profile) and drivers (average speed)."""
    restaurant_ids = [f"r_{i:04d}" for i in range(n_restaurants)]
    driver_ids = [f"d_{i:04d}" for i in range(n_drivers)]
    prep = rng.lognormal(mean=np.log(12.0), sigma=0.35, size=n_restaurants).clip(5.0, 40.0)
    speed = rng.uniform(15.0, 35.0, size=n_drivers)
    return World(
        restaurant_prep_min=pd.Series(prep, index=restaurant_ids, name="restaurant_prep_min"),
        driver_speed_kmh=pd.Series(speed, index=driver_ids, name="driver_speed_kmh"),
    )


def expected_delivery_time(
    restaurant_prep_min: np.ndarray,
    driver_speed_kmh: np.ndarray,
    distance_km: np.ndarray,
    is_peak_hour: np.ndarray,
    order_value: np.ndarray,
) -> np.ndarray:
    """True conditional expectation of the delivery time in minutes."""
    prep = restaurant_prep_min * (
        1 + PEAK_PREP_SLOWDOWN * is_peak_hour
    ) + VALUE_PREP_MIN * np.log1p(order_value / 15.0)
    travel = distance_km / driver_speed_kmh * 60.0 * (1 + PEAK_TRAFFIC_SLOWDOWN * is_peak_hour)
    return prep + travel + HANDOVER_MIN


def noise_std(expected_minutes: np.ndarray) -> np.ndarray:
    """Standard deviation of the delivery-time noise around its expectation."""
    return NOISE_BASE_MIN + NOISE_SLOPE * expected_minutes


def simulate_orders(
    world: World, n_orders: int, n_days: int, rng: np.random.Generator
) -> pd.DataFrame:
    """Simulate ``n_orders`` orders spread over ``n_days`` days, sorted by time."""
    # Popularity differs between restaurants and drivers, but every entity gets some orders.
    restaurant_weights = rng.gamma(shape=4.0, size=len(world.restaurant_prep_min))
    driver_weights = rng.gamma(shape=6.0, size=len(world.driver_speed_kmh))
    restaurant_idx = rng.choice(
        len(restaurant_weights), size=n_orders, p=restaurant_weights / restaurant_weights.sum()
    )
    driver_idx = rng.choice(
        len(driver_weights), size=n_orders, p=driver_weights / driver_weights.sum()
    )

    day = rng.integers(0, n_days, size=n_orders)
    hour = rng.choice(24, size=n_orders, p=_HOUR_WEIGHTS / _HOUR_WEIGHTS.sum())
    minute = rng.integers(0, 60, size=n_orders)
    is_peak = np.isin(hour, list(PEAK_HOURS)).astype(np.int64)
    distance = rng.lognormal(mean=np.log(3.0), sigma=0.6, size=n_orders).clip(0.2, 25.0)
    order_value = rng.lognormal(mean=np.log(28.0), sigma=0.5, size=n_orders).clip(3.0, 400.0)

    prep = world.restaurant_prep_min.to_numpy()[restaurant_idx]
    speed = world.driver_speed_kmh.to_numpy()[driver_idx]
    expected = expected_delivery_time(prep, speed, distance, is_peak, order_value)
    std = noise_std(expected)
    actual = np.maximum(expected + rng.normal(0.0, 1.0, size=n_orders) * std, MIN_DELIVERY_MIN)

    orders = pd.DataFrame(
        {
            "order_ts": pd.Timestamp("2026-01-01")
            + pd.to_timedelta(day, unit="D")
            + pd.to_timedelta(hour, unit="h")
            + pd.to_timedelta(minute, unit="min"),
            "restaurant_id": world.restaurant_prep_min.index.to_numpy()[restaurant_idx],
            "driver_id": world.driver_speed_kmh.index.to_numpy()[driver_idx],
            "distance_km": distance,
            "is_peak_hour": is_peak,
            "order_value": order_value,
            "expected_delivery_time_min": expected,
            "noise_std_min": std,
            "delivery_time_minutes": actual,
        }
    )
    return orders.sort_values("order_ts", kind="stable").reset_index(drop=True)


def generate_order_history(
    n_orders: int,
    *,
    n_restaurants: int = 300,
    n_drivers: int = 800,
    n_days: int = 180,
    seed: int = 42,
) -> tuple[World, pd.DataFrame]:
    """Make a world and its order history; the same seed gives the same history."""
    rng = np.random.default_rng(seed)
    world = make_world(n_restaurants, n_drivers, rng)
    return world, simulate_orders(world, n_orders, n_days, rng)
