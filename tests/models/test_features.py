"""Entity aggregates and feature assembly (request > online store > default)."""

import numpy as np
import pandas as pd
import pytest

from models.features import (
    FEATURE_NAMES,
    MIN_ORDERS_PER_ENTITY,
    OnlineValues,
    assemble_features,
    compute_entity_features,
    training_frame,
)
from serving.schema import Order


def _history() -> pd.DataFrame:
    rows = [("r_a", "d_a", 10.0)] * MIN_ORDERS_PER_ENTITY + [
        ("r_a", "d_b", 30.0)
    ] * MIN_ORDERS_PER_ENTITY
    rows += [("r_rare", "d_a", 99.0)] * (MIN_ORDERS_PER_ENTITY - 1)
    frame = pd.DataFrame(rows, columns=["restaurant_id", "driver_id", "delivery_time_minutes"])
    frame["order_ts"] = pd.Timestamp("2026-01-01")
    return frame


def test_entity_averages_skip_rare_entities_and_default_to_the_overall_mean() -> None:
    history = _history()
    entities = compute_entity_features(history)
    assert entities.restaurant_avg_delivery_time == {"r_a": 20.0}
    assert "r_rare" not in entities.restaurant_avg_delivery_time
    assert entities.driver_avg_delivery_time["d_b"] == 30.0
    assert entities.defaults["restaurant_avg_delivery_time"] == pytest.approx(
        history["delivery_time_minutes"].mean(), abs=1e-4
    )


def test_training_frame_uses_feature_order_and_defaults_for_unknown_entities() -> None:
    entities = compute_entity_features(_history())
    orders = pd.DataFrame(
        {
            "restaurant_id": ["r_a", "r_new"],
            "driver_id": ["d_b", "d_new"],
            "distance_km": [1.0, 2.0],
            "is_peak_hour": [0, 1],
            "order_value": [9.0, 8.0],
        }
    )
    frame = training_frame(orders, entities)
    assert tuple(frame.columns) == FEATURE_NAMES
    assert frame.loc[0, "restaurant_avg_delivery_time"] == 20.0
    assert (
        frame.loc[1, "restaurant_avg_delivery_time"]
        == entities.defaults["restaurant_avg_delivery_time"]
    )
    assert frame.loc[1, "driver_avg_delivery_time"] == entities.defaults["driver_avg_delivery_time"]


def _order(**overrides: object) -> Order:
    fields = {
        "restaurant_id": "r",
        "driver_id": "d",
        "distance_km": 2.5,
        "is_peak_hour": 1,
        "order_value": 30.0,
        **overrides,
    }
    return Order.model_validate(fields)


def test_assembly_prefers_request_then_online_then_default() -> None:
    orders = [_order(restaurant_avg_delivery_time=41.0), _order(), _order()]
    online = OnlineValues(
        restaurant_avg_delivery_time=[11.0, 12.0, None], driver_avg_delivery_time=[21.0, None, 23.0]
    )
    defaults = {"restaurant_avg_delivery_time": 35.0, "driver_avg_delivery_time": 36.0}
    matrix, sources = assemble_features(orders, online, defaults)
    assert matrix.shape == (3, len(FEATURE_NAMES))
    np.testing.assert_array_equal(matrix[0], [2.5, 1, 30.0, 41.0, 21.0])
    np.testing.assert_array_equal(matrix[1, 3:], [12.0, 36.0])
    np.testing.assert_array_equal(matrix[2, 3:], [35.0, 23.0])
    assert sources == [
        {"restaurant_avg_delivery_time": "request", "driver_avg_delivery_time": "online"},
        {"restaurant_avg_delivery_time": "online", "driver_avg_delivery_time": "default"},
        {"restaurant_avg_delivery_time": "default", "driver_avg_delivery_time": "online"},
    ]
