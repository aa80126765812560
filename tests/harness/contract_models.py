"""Models trained with a feature contract other than the default, from in-memory orders.

A small delivery team's export of its own making: a kitchen (entity), the distance, a rush-hour
flag kept as 0/1 (a boolean), the weather (a category refused when unseen), the vehicle (a
category whose unseen values are ``other``), the item count (optional, default 1), and a
target that really depends on every one of them. ``register`` fits and registers a model on
it with ``fit_and_evaluate`` and ``register_model`` (the file checker of
``models/training/order_history.py`` is not needed for in-memory frames).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from models.contract import FeatureContract, parse_contract

KITCHEN_CONTRACT = """
version: 1
description: A kitchen's own export, with its weather and vehicle columns.
target: {column: minutes, minimum: 1, maximum: 240}
timestamp: {column: placed_at}
fields:
  kitchen_id:
    kind: entity
    example: k_007
    key: kitchen
    feature: kitchen_mean_minutes
    min_orders: 3
  km:
    kind: number
    description: road distance to the door
    minimum: 0.1
    maximum: 40
    example: 3.5
    monotonic: increasing
    cohort: {dimension: distance, edges: [3, 8]}
  rush:
    kind: boolean
    description: ordered during the lunch or dinner rush
    example: 1
    cohort: {dimension: rush}
  weather:
    kind: category
    values: [sunny, rain, storm]
    example: rain
    cohort: {dimension: weather}
  vehicle:
    kind: category
    values: [bike, scooter, car]
    on_unseen: other
    example: bike
  items:
    kind: integer
    minimum: 1
    maximum: 30
    example: 2
    required: false
    default: 1
examples:
  - {kitchen_id: k_new, kitchen_mean_minutes: 25.0, weather: storm, rush: false}
"""

SUBSET_CONTRACT = """
version: 1
target: {column: minutes, minimum: 1, maximum: 240}
timestamp: {column: placed_at}
fields:
  kitchen_id:
    kind: entity
    example: k_007
    key: kitchen
    feature: kitchen_mean_minutes
    min_orders: 3
  weather:
    kind: category
    values: [sunny, rain, storm, hail]
    example: rain
  km:
    kind: number
    minimum: 0
    maximum: 50
    example: 3.5
"""
"""A challenger on a subset of the kitchen contract's fields, in another order, with wider
bounds and one more weather value: every field it needs is carried by the kitchen API."""

WEATHER_EFFECT = {"sunny": 0.0, "rain": 6.0, "storm": 15.0}
VEHICLE_EFFECT = {"bike": 5.0, "scooter": 0.0, "car": 2.0, "truck": 9.0}
"""``truck`` is not a declared vehicle: the training rows that have it teach ``other``."""


def kitchen_contract() -> FeatureContract:
    """The kitchen contract (``KITCHEN_CONTRACT``)."""
    return parse_contract(KITCHEN_CONTRACT, "kitchen contract")


def subset_contract() -> FeatureContract:
    """The challenger's contract (``SUBSET_CONTRACT``)."""
    return parse_contract(SUBSET_CONTRACT, "subset contract")


def kitchen_orders(rows: int = 6_000, kitchens: int = 40, seed: int = 3) -> pd.DataFrame:
    """Orders over 30 days with the kitchen contract's columns (under the training code's names
    ``order_ts`` and ``delivery_time_minutes``); minutes depend on every field."""
    rng = np.random.default_rng(seed)
    kitchen_speed = rng.normal(0.0, 4.0, kitchens)
    kitchen = rng.integers(0, kitchens, rows)
    km = np.round(rng.gamma(2.0, 2.0, rows).clip(0.1, 40), 2)
    rush = rng.random(rows) < 0.35
    weather = rng.choice(list(WEATHER_EFFECT), rows, p=[0.6, 0.3, 0.1])
    vehicle = rng.choice(list(VEHICLE_EFFECT), rows, p=[0.35, 0.35, 0.25, 0.05])
    items = rng.integers(1, 8, rows)
    minutes = (
        10
        + 2.4 * km
        + 7.0 * rush
        + np.vectorize(WEATHER_EFFECT.get)(weather)
        + np.vectorize(VEHICLE_EFFECT.get)(vehicle)
        + 0.8 * items
        + kitchen_speed[kitchen]
        + rng.normal(0, 2.5, rows)
    ).clip(1, 240)
    start = pd.Timestamp("2026-02-01", tz="UTC")
    placed = start + pd.to_timedelta(np.sort(rng.uniform(0, 30 * 86_400, rows)), unit="s")
    return pd.DataFrame(
        {
            "order_ts": placed,
            "kitchen_id": [f"k_{k:03d}" for k in kitchen],
            "km": km,
            "rush": rush,
            "weather": weather,
            "vehicle": vehicle,
            "items": items,
            "delivery_time_minutes": np.round(minutes, 2),
        }
    )


@dataclass(frozen=True)
class ContractModel:
    """A registered model trained with a non-default contract, and what it was trained on."""

    tag: str
    contract: FeatureContract
    parts: dict[str, pd.DataFrame]
    result: Any
    """The ``TrainingResult`` (holdout with the model's outputs, entity tables, metrics)."""


def register(
    contract: FeatureContract, orders: pd.DataFrame, *, stage: str = "candidate", max_iter: int = 60
) -> ContractModel:
    """Fit a model with ``contract`` on ``orders`` (split by time) and register it."""
    from models.store.artifact import register_model
    from models.training.config import TrainingConfig
    from models.training.dataset import TimeSplit, split_by_time
    from models.training.fit import fit_and_evaluate

    parts = split_by_time(orders, TimeSplit())
    config = dataclasses.replace(TrainingConfig.small(), max_iter=max_iter)
    result = fit_and_evaluate(parts, config, contract)
    metadata = {
        "metrics": result.metrics,
        "reference_stats": result.reference_stats,
        "cohort_reference": result.cohort_reference,
        "entity_defaults": result.entities.defaults,
        "training_data": {"kind": "test", "generator": "tests/harness/contract_models.py"},
        "segments": result.segments,
    }
    stored = register_model(
        result.model,
        result.entities,
        contract,
        metadata,
        labels={"stage": stage, "owner": "delivery-eta"},
        compile_library=False,
    )
    return ContractModel(str(stored.tag), contract, parts, result)


def request_body(row: Any, contract: FeatureContract) -> dict[str, Any]:
    """One order of a frame as the API takes it: the contract's fields, JSON types."""
    body: dict[str, Any] = {}
    for name, spec in contract.fields.items():
        value = getattr(row, name)
        if spec.kind == "boolean":
            body[name] = bool(value)
        elif spec.kind == "integer":
            body[name] = int(value)
        elif spec.kind == "number":
            body[name] = float(value)
        else:
            body[name] = str(value)
    return body
