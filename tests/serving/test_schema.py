"""The request models built from a contract: the contract's fields are the API, each kind
validated as the training file held it, every refusal naming its field."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from models.contract import default_contract
from serving.schema import (
    CATEGORY_TEXT_MAX_LENGTH,
    batch_example,
    feedback_model,
    order_model,
)
from tests.harness.contract_models import kitchen_contract

KITCHEN = kitchen_contract()
KitchenOrder = order_model(KITCHEN)
VALID = KITCHEN.example_order()


def _errors(model: type[BaseModel], body: dict[str, Any]) -> list[dict[str, Any]]:
    with pytest.raises(ValidationError) as raised:
        model.model_validate(body)
    return raised.value.errors()


def test_the_default_contract_gives_the_hand_written_api() -> None:
    order = order_model(default_contract())
    schema = order.model_json_schema()
    assert order.__name__ == "Order"
    assert schema["required"] == [
        "restaurant_id",
        "driver_id",
        "distance_km",
        "is_peak_hour",
        "order_value",
    ]
    assert set(schema["properties"]) == {
        *schema["required"],
        "restaurant_avg_delivery_time",
        "driver_avg_delivery_time",
    }
    assert schema["example"] == default_contract().example_order()
    assert schema["additionalProperties"] is False


def test_the_api_requires_the_contracts_own_fields() -> None:
    schema = KitchenOrder.model_json_schema()
    required = [name for name, spec in KITCHEN.fields.items() if spec.required]
    assert schema["required"] == required == ["kitchen_id", "km", "rush", "weather", "vehicle"]
    assert schema["properties"]["weather"]["enum"] == ["sunny", "rain", "storm"]
    assert schema["properties"]["km"]["description"] == "road distance to the door"
    assert schema["properties"]["items"]["default"] == 1
    assert "kitchen_mean_minutes" in schema["properties"]  # the entity's override
    # An order of the default contract is not an order of this one.
    errors = _errors(KitchenOrder, default_contract().example_order())
    missing = {e["loc"][0] for e in errors if e["type"] == "missing"}
    assert missing == {"kitchen_id", "km", "rush", "weather", "vehicle"}


def test_an_unseen_category_is_refused_naming_the_field_and_the_allowed_values() -> None:
    (error,) = _errors(KitchenOrder, {**VALID, "weather": "hail"})
    assert error["loc"] == ("weather",)
    assert all(value in error["msg"] for value in ("sunny", "rain", "storm"))


def test_an_open_category_takes_unseen_text_but_not_unbounded_text() -> None:
    assert KitchenOrder.model_validate({**VALID, "vehicle": "truck"}).vehicle == "truck"  # type: ignore[attr-defined]
    (error,) = _errors(KitchenOrder, {**VALID, "vehicle": "x" * (CATEGORY_TEXT_MAX_LENGTH + 1)})
    assert error["loc"] == ("vehicle",)


@pytest.mark.parametrize("text", ["3.5", "far", ""])
def test_text_in_a_numeric_field_is_refused_naming_it(text: str) -> None:
    for name in ("km", "items", "kitchen_mean_minutes"):
        (error,) = _errors(KitchenOrder, {**VALID, name: text})
        assert error["loc"] == (name,)


def test_a_missing_required_field_is_refused_naming_it() -> None:
    for name in ("kitchen_id", "km", "rush", "weather", "vehicle"):
        (error,) = _errors(KitchenOrder, {k: v for k, v in VALID.items() if k != name})
        assert (error["loc"], error["type"]) == ((name,), "missing")


@pytest.mark.parametrize(("sent", "taken"), [(True, True), (False, False), (1, True), (0, False)])
def test_a_boolean_takes_true_false_and_0_1(sent: Any, taken: bool) -> None:
    assert KitchenOrder.model_validate({**VALID, "rush": sent}).rush is taken  # type: ignore[attr-defined]
    assert (
        KitchenOrder.model_validate_json(
            KitchenOrder.model_validate({**VALID, "rush": sent}).model_dump_json()
        ).rush
        is taken
    )  # type: ignore[attr-defined]


@pytest.mark.parametrize("sent", [2, -1, 1.0, "true", "1", None])
def test_a_boolean_refuses_anything_else_naming_it(sent: Any) -> None:
    (error,) = _errors(KitchenOrder, {**VALID, "rush": sent})
    assert error["loc"] == ("rush",)  # one error, not one per union member


def test_an_optional_field_takes_its_default() -> None:
    order = KitchenOrder.model_validate({k: v for k, v in VALID.items() if k != "items"})
    assert order.items == 1  # type: ignore[attr-defined]
    assert order.kitchen_mean_minutes is None  # type: ignore[attr-defined]


def test_an_entity_override_is_bounded_by_the_targets_maximum() -> None:
    assert KITCHEN.target.maximum == 240
    ok = KitchenOrder.model_validate({**VALID, "kitchen_mean_minutes": 240})
    assert ok.kitchen_mean_minutes == 240  # type: ignore[attr-defined]
    for bad in (0, 240.5, float("inf")):
        (error,) = _errors(KitchenOrder, {**VALID, "kitchen_mean_minutes": bad})
        assert error["loc"] == ("kitchen_mean_minutes",)


def test_every_example_order_is_a_valid_order() -> None:
    for contract in (default_contract(), KITCHEN):
        model = order_model(contract)
        examples = batch_example(contract)
        assert examples[0] == contract.example_order() and len(examples) == 2
        for example in contract.example_orders():
            model.model_validate(example)


def test_feedback_is_bounded_by_the_contracts_target() -> None:
    feedback = feedback_model(KITCHEN)
    body = {"prediction_id": "ec5640c8-e9de-4bfb-8a6e-931cc565e065"}
    assert feedback.model_validate({**body, "actual_delivery_time_min": 240})
    (error,) = _errors(feedback, {**body, "actual_delivery_time_min": 241})
    assert error["loc"] == ("actual_delivery_time_min",)
