"""Client-derived metric labels map onto the fixed sets."""

import pytest

from serving.telemetry.labels import FIELD_LABELS, field_label, route_label


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
    assert field_label(location) == label


def test_the_field_set_is_the_api_fields() -> None:
    assert {"restaurant_id", "distance_km", "prediction_id", "orders", "body"} <= FIELD_LABELS
    assert len(FIELD_LABELS) == 11
