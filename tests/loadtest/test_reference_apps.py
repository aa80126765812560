"""The benchmark's reference servers for real: the tutorial app and the two framework floors,
started as ``make bench`` starts them (one worker each, free loopback ports), answer one
prediction each; the floors validate the service's ``Order`` contract."""

from __future__ import annotations

import contextlib
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from loadtest.bench.common import BENTOML_FLOOR, FASTAPI_FLOOR, TUTORIAL, Target
from loadtest.bench.targets import start_group, tutorial_model_path
from loadtest.bench.workers import TargetSpec
from loadtest.floors.order import Order as FloorOrder
from serving.schema import ORDER_EXAMPLE
from serving.schema import Order as ServiceOrder

# ~2k training rows: the fit at start-up takes about a second (the bench fits ~19k, once).
SMALL_FIT_ORDERS = "8000"
RESPONSE_FIELDS = {
    "predicted_delivery_time_min",
    "confidence_interval_lower",
    "confidence_interval_upper",
    "model_version",
    "prediction_id",
}


def _post(url: str, body: Any) -> tuple[int, Any]:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The servers' results folder (logs, private homes, the tutorial's model)."""
    return tmp_path_factory.mktemp("reference-apps")


@pytest.fixture(scope="module")
def servers(out: Path) -> Iterator[dict[str, Target]]:
    """The three servers, started together (one worker each) and stopped after the module."""
    with pytest.MonkeyPatch.context() as patch, contextlib.ExitStack() as stack:
        patch.setenv("TUTORIAL_TRAINING_ORDERS", SMALL_FIT_ORDERS)
        specs = [TargetSpec(name, name, 1) for name in (TUTORIAL, FASTAPI_FLOOR, BENTOML_FLOOR)]
        started = start_group(stack, specs, out, None, {})
        yield {t.name: t for t in started}


@pytest.mark.server
@pytest.mark.parametrize("name", [TUTORIAL, FASTAPI_FLOOR, BENTOML_FLOOR])
def test_answers_a_prediction_and_refuses_a_bad_order(
    servers: dict[str, Target], name: str
) -> None:
    url = servers[name].url
    status, body = _post(f"{url}/v1/predict", ORDER_EXAMPLE)
    assert status == 200, body
    assert set(body) >= RESPONSE_FIELDS
    assert body["confidence_interval_lower"] < body["predicted_delivery_time_min"]
    status, _ = _post(f"{url}/v1/predict", {**ORDER_EXAMPLE, "distance_km": -1})
    assert 400 <= status < 500


@pytest.mark.server
def test_tutorial_batch_takes_the_services_batch_body(servers: dict[str, Target]) -> None:
    orders = [ORDER_EXAMPLE, {**ORDER_EXAMPLE, "driver_id": "new_driver", "is_peak_hour": 0}]
    status, body = _post(f"{servers[TUTORIAL].url}/v1/predict/batch", {"orders": orders})
    assert status == 200, body
    assert len(body["predictions"]) == 2
    assert body["predictions"][0]["predicted_delivery_time_min"] > 0


@pytest.mark.server
def test_tutorial_cached_its_fitted_model(servers: dict[str, Target], out: Path) -> None:
    """Started as the bench starts it, the tutorial writes its model where later workers (and
    later targets of the run) load it instead of fitting again."""
    assert tutorial_model_path(out).stat().st_size > 0


def _contract(model: type) -> dict[str, Any]:
    schema = model.model_json_schema()
    return {"properties": schema["properties"], "required": schema["required"]}


def test_floor_order_is_the_services_order() -> None:
    """The floors validate exactly what the service validates (a copy, kept in step here)."""
    assert _contract(FloorOrder) == _contract(ServiceOrder)
    assert (
        FloorOrder.model_config.get("strict") and FloorOrder.model_config.get("extra") == "forbid"
    )
