"""A model trained with its own contract, served for real: the contract is the API.

The kitchen model (``tests/harness/contract_models.py``) has categories, a 0/1 boolean, an
optional field and another entity. Its service requires exactly its fields, refuses bad input
with a 400 naming the field (a category's allowed values too), answers what the offline
pipeline predicted, publishes its contract, and keeps every metric label within the contract's
names whatever the requests send. A challenger whose fields the requests do not carry is
refused at start-up, naming them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest

from models.cohorts import Cohorts
from tests.harness.contract_models import request_body
from tests.harness.local_server import local_server
from tests.service.test_startup import _refusal, _serve

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def kitchen_client(
    kitchen_model: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[httpx.Client]:
    workdir = tmp_path_factory.mktemp("kitchen")
    env = {"DELIVERY_ETA_MODEL_TAG": kitchen_model.tag}
    with (
        local_server(workdir / "server.log", env=env) as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        yield client


def _body(kitchen_model: Any, **changes: Any) -> dict[str, Any]:
    row = next(kitchen_model.parts["holdout"].itertuples())
    return {**request_body(row, kitchen_model.contract), **changes}


def _refused(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 400, response.text
    return list(response.json()["detail"])


def test_the_served_api_is_the_models_contract(
    kitchen_client: httpx.Client, kitchen_model: Any
) -> None:
    contract = kitchen_model.contract
    assert kitchen_client.get("/contract").json() == contract.metadata()
    order = kitchen_client.get("/docs.json").json()["components"]["schemas"]["Order"]
    assert order["required"] == ["kitchen_id", "km", "rush", "weather", "vehicle"]
    assert order["properties"]["weather"]["enum"] == ["sunny", "rain", "storm"]
    assert order["example"] == contract.example_order()
    # An order of the default contract's fields lacks every field this API requires.
    default_order = {"restaurant_id": "r_1", "driver_id": "d_1", "distance_km": 3.2,
                     "is_peak_hour": 1, "order_value": 25.0}  # fmt: skip
    detail = _refused(kitchen_client.post("/v1/predict", json=default_order))
    missing = {e["loc"][-1] for e in detail if e["type"] == "missing"}
    assert missing == {"kitchen_id", "km", "rush", "weather", "vehicle"}


def test_the_api_answers_what_the_offline_pipeline_predicted(
    kitchen_client: httpx.Client, kitchen_model: Any
) -> None:
    holdout = kitchen_model.parts["holdout"].head(100)
    orders = [request_body(row, kitchen_model.contract) for row in holdout.itertuples()]
    response = kitchen_client.post("/v1/predict/batch", json={"orders": orders})
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    served = np.array([p["predicted_delivery_time_min"] for p in predictions])
    offline = kitchen_model.result.holdout.head(100)["predicted"].to_numpy()
    np.testing.assert_allclose(served, offline, rtol=0, atol=1e-6)
    assert {tuple(p["features_source"]) for p in predictions} == {("kitchen_mean_minutes",)}
    single = kitchen_client.post("/v1/predict", json=orders[0])
    assert single.json()["predicted_delivery_time_min"] == pytest.approx(offline[0], abs=1e-6)


def test_an_unseen_category_is_a_400_naming_the_field_and_its_values(
    kitchen_client: httpx.Client, kitchen_model: Any
) -> None:
    (error,) = _refused(
        kitchen_client.post("/v1/predict", json=_body(kitchen_model, weather="hail"))
    )
    assert error["loc"][-1] == "weather"
    assert all(value in error["msg"] for value in ("sunny", "rain", "storm"))
    # In a batch too, at the order's position.
    batch = {"orders": [_body(kitchen_model), _body(kitchen_model, weather="fog")]}
    (error,) = _refused(kitchen_client.post("/v1/predict/batch", json=batch))
    assert error["loc"][-3:] == ["orders", 1, "weather"] and "storm" in error["msg"]
    # An open category takes a vehicle it does not know: the model's "other".
    other = kitchen_client.post("/v1/predict", json=_body(kitchen_model, vehicle="truck"))
    assert other.status_code == 200, other.text


def test_text_in_a_numeric_field_and_a_missing_field_are_400s_naming_them(
    kitchen_client: httpx.Client, kitchen_model: Any
) -> None:
    (error,) = _refused(kitchen_client.post("/v1/predict", json=_body(kitchen_model, km="3.5")))
    assert error["loc"][-1] == "km"
    without = {k: v for k, v in _body(kitchen_model).items() if k != "vehicle"}
    (error,) = _refused(kitchen_client.post("/v1/predict", json=without))
    assert (error["loc"][-1], error["type"]) == ("vehicle", "missing")
    # The optional field may be left out: it takes its default.
    optional = {k: v for k, v in _body(kitchen_model).items() if k != "items"}
    assert kitchen_client.post("/v1/predict", json=optional).status_code == 200


def test_a_boolean_takes_0_1_as_the_training_file_held_it(
    kitchen_client: httpx.Client, kitchen_model: Any
) -> None:
    answers = {}
    for sent in (True, 1, False, 0):
        response = kitchen_client.post("/v1/predict", json=_body(kitchen_model, rush=sent))
        assert response.status_code == 200, response.text
        answers[sent if isinstance(sent, bool) else f"{sent}"] = response.json()
    point = "predicted_delivery_time_min"
    assert answers[True][point] == answers["1"][point]
    assert answers[False][point] == answers["0"][point]
    assert answers[True][point] > answers[False][point]  # a rush order takes longer
    (error,) = _refused(kitchen_client.post("/v1/predict", json=_body(kitchen_model, rush=2)))
    assert error["loc"][-1] == "rush"


def _label_values(text: str, label: str) -> set[str]:
    return set(re.findall(rf'{label}="([^"]*)"', text))


def test_metric_labels_stay_within_the_contracts_names_after_hostile_requests(
    kitchen_client: httpx.Client, kitchen_model: Any
) -> None:
    contract = kitchen_model.contract
    hostile: list[dict[str, Any]] = [
        _body(kitchen_model, weather="weather_" + "x" * 50),
        _body(kitchen_model, vehicle="v" * 500),
        _body(kitchen_model, **{"distance_km": 3.0, "restaurant_id": "r_1"}),
        _body(kitchen_model, **{f"field_{i}": i for i in range(5)}),
        _body(kitchen_model, kitchen_id="k bad id", km=float("1e9")),
        {"orders": "not a list"},
        {f"cohort_{i}": i for i in range(3)},
    ]
    for body in hostile:
        assert kitchen_client.post("/v1/predict", json=body).status_code == 400
    for vehicle in ("truck", "rocket", "cohort=evil"):  # accepted: the model's "other"
        assert (
            kitchen_client.post(
                "/v1/predict", json=_body(kitchen_model, vehicle=vehicle)
            ).status_code
            == 200
        )

    text = kitchen_client.get("/metrics").text
    request_fields = {*contract.fields, *contract.entity_features}
    fields = _label_values(text, "field")
    assert {"weather", "vehicle", "other"} <= fields
    assert fields <= request_fields | {"prediction_id", "actual_delivery_time_min", "orders",
                                       "body", "other"}  # fmt: skip
    assert _label_values(text, "feature") <= set(contract.feature_names)
    assert "kitchen_mean_minutes" in _label_values(text, "feature")
    assert _label_values(text, "cohort") <= set(Cohorts(contract).names)
    assert "weather_storm" in Cohorts(contract).names
    assert _label_values(text, "dimension") <= set(contract.cohort_dimensions)


def test_a_challenger_needing_fields_the_requests_lack_refuses_to_start(
    registered: Any, kitchen_model: Any
) -> None:
    line = _refusal(
        _serve(
            {
                "DELIVERY_ETA_MODEL_TAG": registered.tag,
                "DELIVERY_ETA_SHADOW_MODEL_TAG": kitchen_model.tag,
            }
        )
    )
    assert "shadow model (DELIVERY_ETA_SHADOW_MODEL_TAG)" in line
    assert "field 'weather' (category) is required by the challenger" in line
    assert "'kitchen_id'" in line and "requests do not carry it" in line
