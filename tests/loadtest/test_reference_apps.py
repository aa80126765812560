"""The benchmark's reference servers for real: the tutorial app and the two framework floors,
started as ``make bench`` starts them (one worker each, free loopback ports), answer one
prediction each; the floors validate the order of the service's feature contract."""

from __future__ import annotations

import contextlib
import json
import random
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
from loadtest.floors.order import order_model
from models.contract import FeatureContract, default_contract
from models.contract.bodies import OrderGenerator, example_order
from models.contract.invalid_bodies import invalid_predict_variants
from models.contract.request import order_problems
from tests.models.contract.mixed_contract import MIXED

ORDER_EXAMPLE = example_order(default_contract())

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
    distance = default_contract().fields_of_kind("number")[0]
    status, _ = _post(f"{url}/v1/predict", {**ORDER_EXAMPLE, distance: -1})
    assert 400 <= status < 500


@pytest.mark.server
def test_tutorial_batch_takes_the_services_batch_body(servers: dict[str, Target]) -> None:
    orders = OrderGenerator(default_contract()).orders(random.Random(1), 2)
    status, body = _post(f"{servers[TUTORIAL].url}/v1/predict/batch", {"orders": orders})
    assert status == 200, body
    assert len(body["predictions"]) == 2
    assert body["predictions"][0]["predicted_delivery_time_min"] > 0


@pytest.mark.server
def test_tutorial_cached_its_fitted_model(servers: dict[str, Target], out: Path) -> None:
    """Started as the bench starts it, the tutorial writes its model where later workers (and
    later targets of the run) load it instead of fitting again."""
    assert tutorial_model_path(out).stat().st_size > 0


@pytest.mark.parametrize("contract", [default_contract(), MIXED], ids=["default", "mixed"])
def test_a_floor_accepts_and_refuses_what_the_contract_does(contract: FeatureContract) -> None:
    """The floors validate what the service validates: built from the same contract."""
    model = order_model(contract)
    assert model.model_config.get("strict") and model.model_config.get("extra") == "forbid"
    rng = random.Random(5)
    orders = OrderGenerator(contract).orders(rng, 2000)
    for order in orders:
        model.model_validate_json(json.dumps(order))
    for variant in invalid_predict_variants(contract):
        body = variant.body(orders, rng)
        with pytest.raises(ValueError):  # pydantic's ValidationError is a ValueError
            model.model_validate_json(body)
    required = model.model_json_schema()["required"]
    assert required == [n for n, s in contract.fields.items() if s.required]


def test_the_floor_of_the_default_contract_has_the_apis_fields() -> None:
    schema = FloorOrder.model_json_schema()
    assert list(schema["properties"]) == [
        *default_contract().fields,
        *default_contract().entity_features,
    ]
    assert all(order_problems(default_contract(), o) == [] for o in [ORDER_EXAMPLE])
