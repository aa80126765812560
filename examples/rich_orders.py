"""Write an order history with the order-time columns a real delivery export carries.

Besides the five columns of the default contract (restaurant_id, driver_id, distance_km,
is_peak_hour, order_value), ``created_at`` and the target ``delivery_time_min``, every order has
weather, road_traffic, vehicle_type, city_tier, item_count, kitchen_prep_estimate_min,
driver_rating, concurrent_deliveries and festival -- and those carry most of the signal: the
delivery time is built from them (travel at a speed set by the vehicle, the traffic, the weather
and the city; the kitchen's estimate; the driver's other deliveries; festival days), so a model
that uses them is far better than one on the five default fields.

Also in the file, as in a real export: ``order_id`` (a row id, not a feature), ``delivered_at``
(known only after delivery) and a few rare weather values (a tail of well under 0.1 % of the
orders each), so ``make contract`` has something to leave out and a tail to map to ``other``.

Independent of ``models/training/synthetic_orders.py`` and ``examples/warehouse_export.py``.

python examples/rich_orders.py --rows 60000 --out orders.csv      # or .parquet
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

EXTRA_COLUMNS = (
    "weather",
    "road_traffic",
    "vehicle_type",
    "city_tier",
    "item_count",
    "kitchen_prep_estimate_min",
    "driver_rating",
    "concurrent_deliveries",
    "festival",
)
"""The order-time columns beyond the default contract's five fields."""
DEFAULT_FIELDS = ("restaurant_id", "driver_id", "distance_km", "is_peak_hour", "order_value")
"""The default contract's request fields (the five-field model's inputs)."""

# value: (probability, travel-speed factor). The last three are the rare tail.
WEATHER = {
    "Sunny": (0.36, 1.00),
    "Cloudy": (0.25, 0.95),
    "Rainy": (0.18, 0.75),
    "Fog": (0.10, 0.70),
    "Stormy": (0.10, 0.55),
    "Sandstorm": (0.0004, 0.50),
    "Hail": (0.0003, 0.60),
    "Snow": (0.0003, 0.50),
}
RARE_WEATHER = ("Sandstorm", "Hail", "Snow")
TRAFFIC_LEVELS = ("Low", "Medium", "High", "Jam")
TRAFFIC_SPEED = np.array([1.0, 0.8, 0.6, 0.4])
TRAFFIC_P_OFF_PEAK = np.array([0.45, 0.35, 0.15, 0.05])
TRAFFIC_P_PEAK = np.array([0.10, 0.30, 0.35, 0.25])
# vehicle: (share of drivers, km/h)
VEHICLES = {"motorcycle": (0.50, 30.0), "scooter": (0.25, 25.0), "bicycle": (0.15, 15.0)}
VEHICLES["car"] = (0.10, 28.0)
# city tier: (share of restaurants, travel-speed factor)
CITY_TIERS = {"Metropolitan": (0.50, 0.85), "Urban": (0.35, 1.00), "Semi-Urban": (0.15, 1.15)}


def rich_orders(rows: int = 60_000, days: int = 90, seed: int = 7) -> pd.DataFrame:
    """``rows`` delivered orders over ``days`` days, sorted by ``created_at``; the same
    ``seed`` gives the same frame."""
    rng = np.random.default_rng(seed)
    n_restaurants, n_drivers = 300, 800

    # Per restaurant: a kitchen speed and a city; per driver: a vehicle and a rating.
    kitchen_base = rng.gamma(shape=16.0, scale=0.6, size=n_restaurants)  # mean 9.6 min
    tier_names = list(CITY_TIERS)
    tier_of = rng.choice(len(tier_names), size=n_restaurants, p=_p(CITY_TIERS))
    popularity = rng.pareto(2.0, size=n_restaurants) + 0.2
    vehicle_names = list(VEHICLES)
    vehicle_of = rng.choice(len(vehicle_names), size=n_drivers, p=_p(VEHICLES))
    rating_of = np.round(3.0 + 2.0 * rng.beta(5.0, 1.6, size=n_drivers), 1)
    festival_day = rng.random(days) < 0.06

    day = rng.integers(0, days, size=rows)
    hour_weights = np.array(
        [1, 0.5, 0, 0, 0, 0, 0, 0.5, 1, 2, 4, 10, 12, 8, 4, 3, 4, 8, 13, 14, 11, 6, 3, 2]
    )
    hour = rng.choice(24, size=rows, p=hour_weights / hour_weights.sum())
    second = rng.integers(0, 3600, size=rows)
    peak = np.isin(hour, [12, 13, 19, 20, 21]).astype(np.int64)
    restaurant = rng.choice(n_restaurants, size=rows, p=popularity / popularity.sum())
    driver = rng.integers(0, n_drivers, size=rows)

    distance = np.round(rng.gamma(shape=2.0, scale=1.5, size=rows).clip(0.2, 25.0), 2)
    item_count = (1 + rng.poisson(1.8, size=rows)).clip(1, 15)
    order_value = np.round(item_count * rng.gamma(shape=4.0, scale=3.0, size=rows) + 2.0, 2)
    weather_names = list(WEATHER)
    weather = rng.choice(len(weather_names), size=rows, p=_p(WEATHER))
    traffic = np.where(
        peak == 1,
        rng.choice(4, size=rows, p=TRAFFIC_P_PEAK),
        rng.choice(4, size=rows, p=TRAFFIC_P_OFF_PEAK),
    )
    concurrent = np.minimum(rng.poisson(0.6 + 0.9 * peak), 4)
    festival = festival_day[day].astype(np.int64)
    prep_estimate = np.round(
        (kitchen_base[restaurant] + 1.2 * item_count + rng.normal(0.0, 3.0, size=rows)).clip(
            3.0, 60.0
        ),
        1,
    )

    weather_speed = np.array([speed for _, speed in WEATHER.values()])
    vehicle_kmh = np.array([kmh for _, kmh in VEHICLES.values()])
    tier_speed = np.array([speed for _, speed in CITY_TIERS.values()])
    kmh = (
        vehicle_kmh[vehicle_of[driver]]
        * TRAFFIC_SPEED[traffic]
        * weather_speed[weather]
        * tier_speed[tier_of[restaurant]]
    )
    travel = distance / kmh * 60.0
    prep = prep_estimate * rng.lognormal(0.0, 0.08, size=rows)
    waiting = 4.5 * concurrent + 10.0 * festival + 3.0 * (5.0 - rating_of[driver])
    delivery = (prep + travel + waiting + 4.0) * rng.lognormal(0.0, 0.06, size=rows)
    delivery = np.round(delivery.clip(2.0, 280.0), 1)

    created = (
        pd.Timestamp("2026-01-05")
        + pd.to_timedelta(day, unit="D")
        + pd.to_timedelta(hour, unit="h")
        + pd.to_timedelta(second, unit="s")
    )
    delivered = created + pd.to_timedelta(np.round(delivery * 60), unit="s")
    frame = pd.DataFrame(
        {
            "order_id": [f"o-{i:08d}" for i in rng.permutation(rows)],
            "created_at": created.strftime("%Y-%m-%dT%H:%M:%S"),
            "restaurant_id": [f"r_{i:04d}" for i in restaurant],
            "driver_id": [f"d_{i:04d}" for i in driver],
            "distance_km": distance,
            "is_peak_hour": peak,
            "order_value": order_value,
            "weather": np.array(weather_names)[weather],
            "road_traffic": np.array(TRAFFIC_LEVELS)[traffic],
            "vehicle_type": np.array(vehicle_names)[vehicle_of[driver]],
            "city_tier": np.array(tier_names)[tier_of[restaurant]],
            "item_count": item_count.astype(np.int64),
            "kitchen_prep_estimate_min": prep_estimate,
            "driver_rating": rating_of[driver],
            "concurrent_deliveries": concurrent.astype(np.int64),
            "festival": festival,
            "delivered_at": delivered.strftime("%Y-%m-%dT%H:%M:%S"),
            "delivery_time_min": delivery,
        }
    )
    return frame.sort_values("created_at", kind="stable").reset_index(drop=True)


def _p(table: dict[str, tuple[float, float]]) -> np.ndarray:
    shares = np.array([share for share, _ in table.values()])
    return shares / shares.sum()


def write_orders(frame: pd.DataFrame, out: Path) -> None:
    """Write ``frame`` as Parquet (``.parquet``) or CSV (anything else)."""
    if out.suffix == ".parquet":
        frame.to_parquet(out, index=False)
    else:
        frame.to_csv(out, index=False)


def main(argv: list[str] | None = None) -> int:
    """CLI: write the orders to ``--out``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=60_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", required=True, help=".csv or .parquet")
    args = parser.parse_args(argv)
    if args.rows < 1 or args.days < 1:
        parser.error("--rows and --days must be positive")
    out = Path(args.out)
    write_orders(rich_orders(args.rows, args.days, args.seed), out)
    print(f"wrote {args.rows:,} orders to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
