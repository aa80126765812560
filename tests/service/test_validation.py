"""Bad input gets a 4xx JSON naming the problem, logged as one line -- never a 5xx."""

import json

import httpx
import pytest

from tests.service.conftest import ORDER

INVALID_ORDERS = {
    "missing field": ({k: v for k, v in ORDER.items() if k != "driver_id"}, "driver_id"),
    "wrong type": ({**ORDER, "distance_km": "far"}, "distance_km"),
    "distance too small": ({**ORDER, "distance_km": 0.05}, "distance_km"),
    "distance too large": ({**ORDER, "distance_km": 50.1}, "distance_km"),
    "peak not 0/1": ({**ORDER, "is_peak_hour": 2}, "is_peak_hour"),
    "peak as string": ({**ORDER, "is_peak_hour": "true"}, "is_peak_hour"),
    "distance as numeric string": ({**ORDER, "distance_km": "3.5"}, "distance_km"),
    "order value as boolean": ({**ORDER, "order_value": False}, "order_value"),
    "negative order value": ({**ORDER, "order_value": -1}, "order_value"),
    "empty id": ({**ORDER, "restaurant_id": ""}, "restaurant_id"),
    "id with spaces": ({**ORDER, "driver_id": "drop table"}, "driver_id"),
    "negative entity average": (
        {**ORDER, "driver_avg_delivery_time": -3},
        "driver_avg_delivery_time",
    ),
    "unknown field": ({**ORDER, "tip": 3}, "tip"),
    "null required": ({**ORDER, "order_value": None}, "order_value"),
}


@pytest.mark.parametrize("case", INVALID_ORDERS)
def test_invalid_order_is_a_400_naming_the_field(client: httpx.Client, case: str) -> None:
    payload, field = INVALID_ORDERS[case]
    response = client.post("/v1/predict", json=payload)
    assert response.status_code == 400, response.text
    body = response.json()
    assert any(field in detail["loc"] for detail in body["detail"]), body


@pytest.mark.parametrize(
    "raw, field",
    [
        (
            '{"restaurant_id":"r","driver_id":"d","distance_km":NaN,"is_peak_hour":0,"order_value":1}',
            "distance_km",
        ),
        (
            '{"restaurant_id":"r","driver_id":"d","distance_km":2,"is_peak_hour":0,"order_value":Infinity}',
            "order_value",
        ),
        (
            '{"restaurant_id":"r","driver_id":"d","distance_km":2,"is_peak_hour":0,"order_value":1,'
            '"restaurant_avg_delivery_time":-Infinity}',
            "restaurant_avg_delivery_time",
        ),
    ],
)
def test_nan_and_infinity_are_rejected(client: httpx.Client, raw: str, field: str) -> None:
    response = client.post("/v1/predict", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert any(field in d["loc"] for d in response.json()["detail"])


def test_peak_hour_takes_true_false_and_0_1_alike(client: httpx.Client) -> None:
    """is_peak_hour is a boolean that also takes 0/1, as the training files hold it."""
    answers = [
        client.post("/v1/predict", json={**ORDER, "is_peak_hour": value})
        for value in (True, 1, False, 0)
    ]
    assert [a.status_code for a in answers] == [200] * 4
    minutes = [a.json()["predicted_delivery_time_min"] for a in answers]
    assert minutes[0] == minutes[1] and minutes[2] == minutes[3]
    assert minutes[0] > minutes[2]  # peak hours are slower


@pytest.mark.parametrize("raw", ['{"restaurant_id": ', "[1, 2]", "", "null", "not json"])
def test_malformed_body_is_a_400(client: httpx.Client, raw: str) -> None:
    response = client.post("/v1/predict", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert "error" in response.json()


def test_batch_validation_names_the_row_and_field(client: httpx.Client) -> None:
    response = client.post(
        "/v1/predict/batch", json={"orders": [ORDER, {**ORDER, "distance_km": 99}]}
    )
    assert response.status_code == 400
    assert ["orders", 1, "distance_km"] in [d["loc"] for d in response.json()["detail"]]


@pytest.mark.parametrize("orders", [[], [ORDER] * 1001])
def test_batch_size_limits(client: httpx.Client, orders: list[dict]) -> None:  # type: ignore[type-arg]
    response = client.post("/v1/predict/batch", json={"orders": orders})
    assert response.status_code == 400
    assert response.json()["detail"][0]["loc"] == ["orders"]


def test_pickle_bodies_are_refused(client: httpx.Client) -> None:
    response = client.post(
        "/v1/predict",
        content=b"\x80\x04K\x01.",
        headers={"content-type": "application/vnd.bentoml+pickle"},
    )
    assert 400 <= response.status_code < 500


def test_client_errors_are_logged_as_one_line_without_traceback(
    client: httpx.Client, server
) -> None:  # type: ignore[no-untyped-def]
    sent = client.post("/v1/predict", json={**ORDER, "distance_km": "far"})
    client.post("/v1/predict", json=ORDER)  # a later request, so the log line has been flushed
    request_id = sent.headers["x-request-id"]
    log = server.log()
    lines = [json.loads(line) for line in log.splitlines() if request_id in line]
    assert len(lines) == 1, lines  # exactly one line for the failed request
    (line,) = lines
    assert line["level"] == "WARNING" and line["error_category"] == "validation"
    assert line["status"] == 400 and "distance_km" in line["error"]
    assert "far" not in json.dumps(line)  # no request body content in logs
    assert "Traceback" not in log
    assert "ValidationError" not in log
