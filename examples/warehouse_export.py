"""Write a stand-in for a warehouse export of past orders, in the training schema.

Independent of ``models/training/synthetic_orders.py`` on purpose (another world, not the
generator's): a week with busy weekends and a growing platform, restaurants opening during
the period (so the newest orders meet restaurants the entity history never saw), rainy days,
right-skewed (log-normal) delay noise instead of Gaussian, ids in another format, timestamps
with a +01:00 offset, and extra warehouse columns the trainer must ignore with the default
contract (``make contract`` leaves ``order_id`` out as a row id and drafts ``city``, which
carries no signal here, as a category). For extra columns that do carry signal, see
``examples/rich_orders.py``.

python examples/warehouse_export.py --rows 200000 --out orders.csv      # or .parquet
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd


def order_export(rows: int, days: int = 120, seed: int = 2026) -> pd.DataFrame:
    """``rows`` delivered orders over ``days`` days."""
    rng = np.random.default_rng(seed)
    n_restaurants, n_drivers = 450, 1200
    kitchen_min = rng.gamma(shape=9.0, scale=1.5, size=n_restaurants)  # mean 13.5 min
    opened_day = np.where(rng.random(n_restaurants) < 0.8, 0, rng.integers(0, days, n_restaurants))
    driver_kmh = rng.normal(24.0, 5.0, size=n_drivers).clip(10.0, 45.0)
    is_bike = rng.random(n_drivers) < 0.3

    # Traffic grows 60 % over the period and is 40 % higher on Friday-Sunday.
    day_weights = np.linspace(1.0, 1.6, days) * np.where(np.arange(days) % 7 >= 4, 1.4, 1.0)
    day = rng.choice(days, size=rows, p=day_weights / day_weights.sum())
    hour_weights = np.array(
        [1, 0.5, 0, 0, 0, 0, 0, 0.5, 1, 2, 4, 10, 12, 8, 4, 3, 4, 8, 13, 14, 11, 6, 3, 2]
    )
    hour = rng.choice(24, size=rows, p=hour_weights / hour_weights.sum())
    second = rng.integers(0, 3600, size=rows)
    peak = np.isin(hour, [12, 13, 19, 20, 21]).astype(int)

    popularity = rng.pareto(2.0, size=n_restaurants) + 0.2
    restaurant = np.empty(rows, dtype=np.int64)
    for d in np.unique(day):  # only restaurants already open take orders
        at = np.flatnonzero(day == d)
        weights = np.where(opened_day <= d, popularity, 0.0)
        restaurant[at] = rng.choice(n_restaurants, size=len(at), p=weights / weights.sum())
    driver = rng.integers(0, n_drivers, size=rows)
    distance = rng.gamma(shape=2.2, scale=1.6, size=rows).clip(0.3, 30.0)
    order_value = np.round(rng.gamma(shape=3.0, scale=11.0, size=rows).clip(4.0, 600.0), 2)
    rainy = rng.random(days) < 0.2

    speed = driver_kmh[driver] * np.where(is_bike[driver], 0.7, 1.0)
    travel = distance / speed * 60.0 * (1.0 + 0.25 * peak + 0.3 * rainy[day])
    kitchen = kitchen_min[restaurant] * (1.0 + 0.2 * peak) + 0.04 * order_value
    typical = kitchen + travel + 3.0
    # Right-skewed delays: most orders near typical, a long tail of late ones.
    delivery = typical * rng.lognormal(mean=0.0, sigma=0.18, size=rows)
    delivery = np.round(delivery.clip(2.0, 280.0), 1)

    created = (
        pd.Timestamp("2026-03-02", tz="Europe/Paris")
        + pd.to_timedelta(day, unit="D")
        + pd.to_timedelta(hour, unit="h")
        + pd.to_timedelta(second, unit="s")
    )
    frame = pd.DataFrame(
        {
            "order_id": [f"ord-{i:09d}" for i in rng.permutation(rows)],
            "created_at": created.tz_convert("+01:00").strftime("%Y-%m-%dT%H:%M:%S%z"),
            "restaurant_id": [f"rest-{i}" for i in restaurant],
            "driver_id": [f"drv-{i}" for i in driver],
            "city": rng.choice(["north", "centre", "south"], size=rows),
            "distance_km": np.round(distance, 3),
            "is_peak_hour": peak,
            "order_value": order_value,
            "delivery_time_min": delivery,
        }
    )
    return frame.sort_values("created_at", kind="stable").reset_index(drop=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--out", required=True, help=".csv or .parquet")
    args = parser.parse_args(argv)
    out = Path(args.out)
    frame = order_export(args.rows, args.days, args.seed)
    if out.suffix == ".parquet":
        frame.to_parquet(out, index=False)
    else:
        frame.to_csv(out, index=False)
    print(f"wrote {len(frame):,} orders to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
