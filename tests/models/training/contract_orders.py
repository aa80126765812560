"""A contract with every field kind, and an order history whose delivery time really depends on
each of its fields (shared by the training tests)."""

from __future__ import annotations

from functools import cache

import numpy as np
import pandas as pd

from models.contract import FeatureContract, parse_contract
from models.features import ORDER_TS, TARGET
from models.training.config import TrainingConfig
from models.training.dataset import TimeSplit, split_by_time
from models.training.fit import TrainingResult, fit_and_evaluate

CONTRACT_YAML = """\
version: 1
description: every kind of field
target:
  column: minutes
  minimum: 1
  maximum: 300
timestamp:
  column: placed_at
fields:
  store_id:
    kind: entity
    example: s_1
  distance_km:
    kind: number
    minimum: 0.1
    maximum: 40
    example: 3.0
    monotonic: increasing
    cohort:
      dimension: distance
      edges: [3]
  items:
    kind: integer
    minimum: 1
    maximum: 30
    example: 3
    monotonic: increasing
  festival:
    kind: boolean
    example: false
  weather:
    kind: category
    values: [clear, rain, storm]
    example: clear
  vehicle:
    kind: category
    values: [bike, scooter, car]
    on_unseen: other
    example: bike
  city_tier:
    kind: category
    values: [1, 2, 3]
    example: 1
  prep_estimate_min:
    kind: number
    minimum: 0
    maximum: 120
    required: false
    default: 15
    example: 12
"""

WEATHER_MINUTES = {"clear": 0.0, "rain": 6.0, "storm": 15.0}
VEHICLE_SPEED_KMH = {"bike": 12.0, "scooter": 22.0, "car": 28.0, "van": 18.0}
TIER_MINUTES = {1: 8.0, 2: 3.0, 3: 0.0}


def rich_contract() -> FeatureContract:
    """The contract of :data:`CONTRACT_YAML`."""
    return parse_contract(CONTRACT_YAML, "rich.yaml")


def rich_orders(rows: int, days: int = 30, seed: int = 0) -> pd.DataFrame:
    """``rows`` orders in :func:`rich_contract`'s columns, oldest first, plus an extra
    ``order_id`` column. Vehicles include ``van``, a value the contract does not list (it maps
    to ``other``); the noise grows with the delivery time."""
    rng = np.random.default_rng(seed)
    stores = rng.gamma(4.0, 3.0, size=40)
    store = rng.integers(0, len(stores), rows)
    distance = rng.gamma(2.0, 2.0, rows).clip(0.2, 35.0)
    items = rng.integers(1, 12, rows)
    festival = rng.random(rows) < 0.15
    weather = rng.choice(list(WEATHER_MINUTES), rows, p=[0.6, 0.3, 0.1])
    vehicle = rng.choice(list(VEHICLE_SPEED_KMH), rows, p=[0.3, 0.4, 0.25, 0.05])
    tier = rng.choice(list(TIER_MINUTES), rows)
    prep = rng.uniform(5, 30, rows).round(1)
    speed = np.array([VEHICLE_SPEED_KMH[v] for v in vehicle])
    expected = (
        4.0
        + stores[store]
        + 0.6 * prep
        + distance / speed * 60.0
        + 0.8 * items
        + 7.0 * festival
        + np.array([WEATHER_MINUTES[w] for w in weather])
        + np.array([TIER_MINUTES[t] for t in tier])
    )
    minutes = (expected + rng.normal(0, 1, rows) * (1.0 + 0.1 * expected)).clip(1.0, 300.0)
    placed = pd.Timestamp("2026-02-01", tz="UTC") + pd.to_timedelta(
        np.sort(rng.uniform(0, days * 86400, rows)), unit="s"
    )
    return pd.DataFrame(
        {
            "order_id": [f"o{i}" for i in range(rows)],
            "placed_at": placed.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "store_id": [f"s_{i}" for i in store],
            "distance_km": distance.round(3),
            "items": items,
            "festival": festival.astype(int),
            "weather": weather,
            "vehicle": vehicle,
            "city_tier": tier,
            "prep_estimate_min": prep,
            "minutes": minutes.round(2),
        }
    )


@cache
def rich_training(rows: int = 40_000, seed: int = 0, vans: bool = True) -> TrainingResult:
    """A model fitted on :func:`rich_orders` with :func:`rich_contract` (computed once per
    test process; 60 trees, enough to learn every field). Without ``vans`` no order has a
    vehicle outside the contract's values: the ``other`` category is never fitted."""
    orders = rich_orders(rows, seed=seed)
    if not vans:
        orders["vehicle"] = orders["vehicle"].replace("van", "car")
    contract = rich_contract()
    frame = orders.rename(
        columns={contract.timestamp.column: ORDER_TS, contract.target.column: TARGET}
    )
    frame[ORDER_TS] = pd.to_datetime(frame[ORDER_TS], utc=True)
    for name in contract.fields_of_kind("category", "entity"):
        frame[name] = frame[name].astype(str)
    parts = split_by_time(frame, TimeSplit())
    return fit_and_evaluate(parts, TrainingConfig(max_iter=60, seed=seed), contract)
