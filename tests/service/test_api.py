"""Every route of the running service, as a client sees it."""

import json
import uuid

import httpx
import pytest

from models.contract import default_contract, parse_contract
from tests.service.conftest import ORDER

PREDICTION_KEYS = {
    "predicted_delivery_time_min",
    "confidence_interval_lower",
    "confidence_interval_upper",
    "model_version",
    "prediction_id",
    "latency_ms",
    "features_source",
}


def test_predict_returns_a_prediction_with_interval_and_provenance(
    client: httpx.Client, registered
) -> None:  # type: ignore[no-untyped-def]
    response = client.post("/v1/predict", json=ORDER)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == PREDICTION_KEYS
    assert (
        body["confidence_interval_lower"]
        <= body["predicted_delivery_time_min"]
        <= body["confidence_interval_upper"]
    )
    assert body["model_version"] == registered.tag
    uuid.UUID(body["prediction_id"])
    assert body["latency_ms"] > 0
    assert body["features_source"] == {
        "restaurant_avg_delivery_time": "online",
        "driver_avg_delivery_time": "online",
    }


def test_unknown_entities_use_defaults_and_request_values_override(client: httpx.Client) -> None:
    unknown = client.post(
        "/v1/predict", json={**ORDER, "restaurant_id": "brand-new", "driver_id": "new-driver"}
    )
    assert unknown.status_code == 200
    assert set(unknown.json()["features_source"].values()) == {"default"}
    overridden = client.post("/v1/predict", json={**ORDER, "restaurant_avg_delivery_time": 55.0})
    assert overridden.json()["features_source"]["restaurant_avg_delivery_time"] == "request"
    slow_kitchen = overridden.json()["predicted_delivery_time_min"]
    assert (
        slow_kitchen
        > client.post("/v1/predict", json={**ORDER, "restaurant_avg_delivery_time": 15.0}).json()[
            "predicted_delivery_time_min"
        ]
    )


def test_prediction_ids_are_unique(client: httpx.Client) -> None:
    ids = {client.post("/v1/predict", json=ORDER).json()["prediction_id"] for _ in range(5)}
    assert len(ids) == 5


def test_batch_answers_in_input_order(client: httpx.Client, registered) -> None:  # type: ignore[no-untyped-def]
    orders = [{**ORDER, "distance_km": d} for d in (12.0, 0.5, 6.0)]
    response = client.post("/v1/predict/batch", json={"orders": orders})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_version"] == registered.tag
    singles = [
        client.post("/v1/predict", json=o).json()["predicted_delivery_time_min"] for o in orders
    ]
    assert [p["predicted_delivery_time_min"] for p in body["predictions"]] == pytest.approx(
        singles, abs=1e-9
    )
    assert all(set(p) == PREDICTION_KEYS for p in body["predictions"])


def test_batch_of_the_maximum_size_is_accepted(client: httpx.Client) -> None:
    response = client.post("/v1/predict/batch", json={"orders": [ORDER] * 1000})
    assert response.status_code == 200
    assert len(response.json()["predictions"]) == 1000


def test_health_readiness_and_liveness(client: httpx.Client, registered) -> None:  # type: ignore[no-untyped-def]
    assert client.get("/livez").status_code == 200
    assert client.get("/readyz").status_code == 200
    health = client.get("/health")
    assert health.status_code == 200
    body = health.json()
    assert body["status"] == "ok"
    assert body["model_version"] == registered.tag
    assert body["model_stage"] == "candidate"
    assert body["uptime_s"] > 0
    assert body["feature_store"] == {"backend": "embedded", "state": "ready"}


def test_metrics_expose_request_counts_and_batch_sizes(client: httpx.Client) -> None:
    client.post("/v1/predict", json=ORDER)
    text = client.get("/metrics").text
    assert "bentoml_service_request_total" in text
    assert "bentoml_service_adaptive_batch_size_count" in text
    assert "delivery_eta_model_batch_rows_count" in text


def test_openapi_docs_have_realistic_examples(client: httpx.Client) -> None:
    paths = client.get("/docs.json").json()["paths"]

    def body(path: str) -> dict:  # type: ignore[type-arg]
        return paths[path]["post"]["requestBody"]["content"]["application/json"]["schema"]

    assert body("/v1/predict")["title"] == "Order"
    assert body("/v1/predict")["example"]["restaurant_id"] == "r_0042"
    assert body("/v1/predict/batch")["title"] == "BatchRequest"
    batch_example = body("/v1/predict/batch")["properties"]["orders"]["example"]
    assert [order["driver_id"] for order in batch_example] == ["d_0117", "new_driver"]


def test_the_served_contract_is_published_for_tools(client: httpx.Client) -> None:
    published = client.get("/contract")
    assert published.status_code == 200
    contract = parse_contract(json.dumps(published.json()))  # JSON is YAML: tools read it so
    assert contract == default_contract()  # the session's model was trained without CONTRACT
    assert list(published.json()["fields"]) == list(default_contract().fields)  # field order
    # Documented beside /health (a service route, not a /v1 one).
    assert "/contract" in client.get("/docs.json").json()["paths"]
