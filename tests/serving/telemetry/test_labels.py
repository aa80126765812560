"""Client-derived metric labels map onto the fixed sets: the routes, and the served contract's
request fields."""

import pytest

from models.contract import default_contract
from serving.schema import feedback_model, order_model
from serving.telemetry.labels import NO_FIELDS, FieldLabels, route_label
from tests.harness.contract_models import kitchen_contract

DEFAULT = FieldLabels.of(order_model(default_contract()), feedback_model(default_contract()))


@pytest.mark.parametrize(
    ("route", "label"),
    [
        ("/v1/predict", "/v1/predict"),
        ("/v1/predict/batch", "/v1/predict/batch"),
        ("/v1/feedback", "/v1/feedback"),
        ("/v1/feedback/", "unmatched"),
        ("/v1/" + "x" * 10_000, "unmatched"),
    ],
)
def test_routes(route: str, label: str) -> None:
    assert route_label(route) == label


@pytest.mark.parametrize(
    ("location", "label"),
    [
        (("distance_km",), "distance_km"),
        (("orders", 3, "driver_id"), "driver_id"),
        (("orders", 3), "orders"),
        (("orders",), "orders"),
        (("actual_delivery_time_min",), "actual_delivery_time_min"),
        ((), "body"),
        (("k" * 900_000,), "other"),
        (("orders", 7, "unknown"), "other"),
    ],
)
def test_fields(location: tuple[int | str, ...], label: str) -> None:
    assert DEFAULT.of_location(location) == label


def test_the_field_set_is_the_api_fields() -> None:
    assert {"restaurant_id", "distance_km", "prediction_id", "orders", "body"} <= DEFAULT.names
    assert len(DEFAULT.names) == 11
    assert DEFAULT.values == DEFAULT.names | {"other"}


def test_the_field_set_follows_the_served_contract() -> None:
    contract = kitchen_contract()
    labels = FieldLabels.of(order_model(contract), feedback_model(contract))
    assert labels.names == {
        *contract.fields,
        *contract.entity_features,
        "prediction_id",
        "actual_delivery_time_min",
        "orders",
        "body",
    }
    # Another contract's names are not fields of this API.
    assert labels.of_location(("orders", 0, "distance_km")) == "other"
    assert labels.of_location(("orders", 0, "weather")) == "weather"


def test_before_the_contract_is_known_every_field_is_other() -> None:
    assert NO_FIELDS.of_location(("distance_km",)) == "other"
    assert NO_FIELDS.of_location(("orders", 2)) == "orders"
