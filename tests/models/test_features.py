"""Entity aggregates and feature assembly from a contract (request > online store > default),
and the same category codes in training and serving."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest

from models.contract import CategoryField, default_contract
from models.features import (
    FEATURE_SOURCES,
    ORDER_TS,
    TARGET,
    EntityFeatures,
    FeatureAssembler,
    OnlineValues,
    _entity_column,
    category_codes,
    compute_entity_features,
    training_frame,
)
from tests.models.training.contract_orders import rich_contract

MIN_ORDERS = 5  # the default contract's entities' min_orders


def _history() -> pd.DataFrame:
    rows = [("r_a", "d_a", 10.0)] * MIN_ORDERS + [("r_a", "d_b", 30.0)] * MIN_ORDERS
    rows += [("r_rare", "d_a", 99.0)] * (MIN_ORDERS - 1)
    frame = pd.DataFrame(rows, columns=["restaurant_id", "driver_id", TARGET])
    frame[ORDER_TS] = pd.Timestamp("2026-01-01")
    return frame


def test_entity_averages_skip_rare_entities_and_default_to_the_overall_mean() -> None:
    history = _history()
    entities = compute_entity_features(history, default_contract())
    assert entities.tables["restaurant_avg_delivery_time"] == {"r_a": 20.0}
    assert entities.tables["driver_avg_delivery_time"]["d_b"] == 30.0
    assert entities.defaults["restaurant_avg_delivery_time"] == pytest.approx(
        history[TARGET].mean(), abs=1e-4
    )
    assert EntityFeatures.from_json_dict(entities.to_json_dict()) == entities


def test_training_frame_uses_the_contract_order_and_defaults_for_unknown_entities() -> None:
    contract = default_contract()
    entities = compute_entity_features(_history(), contract)
    orders = pd.DataFrame(
        {
            "restaurant_id": ["r_a", "r_new"],
            "driver_id": ["d_b", "d_new"],
            "distance_km": [1.0, 2.0],
            "is_peak_hour": [0, 1],
            "order_value": [9.0, 8.0],
        }
    )
    frame = training_frame(orders, contract, entities)
    assert tuple(frame.columns) == contract.feature_names
    assert frame.loc[0, "restaurant_avg_delivery_time"] == 20.0
    defaults = entities.defaults
    assert frame.loc[1, "restaurant_avg_delivery_time"] == defaults["restaurant_avg_delivery_time"]
    assert frame.loc[1, "driver_avg_delivery_time"] == defaults["driver_avg_delivery_time"]


def _order(**overrides: Any) -> SimpleNamespace:
    """A validated order of the default contract, as the API hands it to the assembler."""
    fields: dict[str, Any] = {
        "restaurant_id": "r",
        "driver_id": "d",
        "distance_km": 2.5,
        "is_peak_hour": 1,
        "order_value": 30.0,
        "restaurant_avg_delivery_time": None,
        "driver_avg_delivery_time": None,
        **overrides,
    }
    return SimpleNamespace(**fields)


def test_assembly_prefers_request_then_online_then_default() -> None:
    assembler = FeatureAssembler(default_contract())
    orders = [_order(restaurant_avg_delivery_time=41.0), _order(), _order()]
    online = OnlineValues(
        {
            "restaurant_avg_delivery_time": [11.0, 12.0, None],
            "driver_avg_delivery_time": [21.0, None, 23.0],
        }
    )
    defaults = {"restaurant_avg_delivery_time": 35.0, "driver_avg_delivery_time": 36.0}
    matrix, codes = assembler.assemble(orders, online, defaults)
    assert matrix.shape == (3, 5)
    np.testing.assert_array_equal(matrix[0], [2.5, 1, 30.0, 41.0, 21.0])
    np.testing.assert_array_equal(matrix[1, 3:], [12.0, 36.0])
    np.testing.assert_array_equal(matrix[2, 3:], [35.0, 23.0])
    # Columns: restaurant, driver; codes index FEATURE_SOURCES (request, online, default).
    assert [[FEATURE_SOURCES[c] for c in row] for row in codes.tolist()] == [
        ["request", "online"],
        ["online", "default"],
        ["default", "online"],
    ]


def test_a_few_orders_entity_column_is_the_whole_column_one() -> None:
    # Up to 16 orders take a Python loop; the column tiled 17 times takes numpy's way.
    rng = np.random.default_rng(3)
    for _ in range(200):
        n = int(rng.integers(1, 6))
        requested = np.where(rng.random(n) < 0.5, np.nan, rng.random(n) * 60)
        online = [rng.choice([None, float("nan"), 12.5, 40]) for _ in range(n)]
        values, codes = _entity_column(requested, online, 30.0)
        tiled_values, tiled_codes = _entity_column(np.tile(requested, 17), online * 17, 30.0)
        assert values.dtype == tiled_values.dtype and codes.dtype == tiled_codes.dtype
        np.testing.assert_array_equal(np.tile(values, 17), tiled_values)
        np.testing.assert_array_equal(np.tile(codes, 17), tiled_codes)


@pytest.mark.parametrize(
    "values",
    [
        pd.Series(["rain", "clear", "storm", None]),
        pd.Series(["rain", "clear", "storm", None], dtype="category"),
    ],
    ids=["text", "categorical"],
)
def test_category_codes_index_the_levels_and_refuse_the_unknown(values: pd.Series) -> None:
    spec = rich_contract().fields["weather"]
    assert isinstance(spec, CategoryField)
    np.testing.assert_array_equal(category_codes(values, spec), [1, 0, 2, np.nan])
    unknown = pd.Series(["fog"])
    assert np.isnan(category_codes(unknown, spec)).all()


def test_an_unlisted_value_of_an_other_category_takes_the_other_code() -> None:
    spec = rich_contract().fields["vehicle"]
    assert isinstance(spec, CategoryField)
    codes = category_codes(pd.Series(["car", "van", "bike"]), spec)
    np.testing.assert_array_equal(codes, [2, 3, 0])


def test_training_and_serving_give_an_order_the_same_model_input() -> None:
    contract = rich_contract()
    history = pd.DataFrame(
        {"store_id": ["s_1"] * 6, TARGET: [20.0] * 6, ORDER_TS: pd.Timestamp("2026-01-01")}
    )
    entities = compute_entity_features(history, contract)
    order = {**contract.example_order(), "weather": "storm", "vehicle": "car", "city_tier": 3}
    trained = training_frame(pd.DataFrame([order]), contract, entities).to_numpy()
    request = SimpleNamespace(**order, **dict.fromkeys(contract.entity_features))
    online = OnlineValues.missing(contract.entity_features, 1, failed=False)
    served, _ = FeatureAssembler(contract).assemble([request], online, entities.defaults)
    np.testing.assert_array_equal(served, trained)
    decoded = FeatureAssembler(contract).request_values(served)
    assert decoded["weather"] == ["storm"] and decoded["city_tier"] == [3]
