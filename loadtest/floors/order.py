"""The order the floors validate and the constant answer they return.

The order model is built from the feature contract the service serves (``FLOOR_CONTRACT``, a
contract file the benchmark writes once the service runs; else the default contract): the same
fields, kinds, bounds and strictness as the service's request, so the floors pay the service's
validation cost. Only pydantic and the contract are imported -- not ``serving``, which pulls in
numpy and pandas and would inflate a floor's memory. tests/loadtest/test_reference_apps.py
checks that a floor accepts and refuses what the contract does.
"""

from __future__ import annotations

import os
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from models.contract import (
    ENTITY_ID_MAX_LENGTH,
    ENTITY_ID_PATTERN,
    BooleanField,
    CategoryField,
    EntityField,
    FeatureContract,
    IntegerField,
    NumberField,
    default_contract,
)
from models.served_contract import load_contract_file

EntityId = Annotated[
    str, Field(min_length=1, max_length=ENTITY_ID_MAX_LENGTH, pattern=ENTITY_ID_PATTERN)
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


def _annotation(spec: Any) -> Any:
    """A field's type with its constraints, as the API validates it."""
    if isinstance(spec, NumberField):
        return Annotated[float, Field(ge=spec.minimum, le=spec.maximum, allow_inf_nan=False)]
    if isinstance(spec, IntegerField):
        return Annotated[int, Field(ge=spec.minimum, le=spec.maximum)]
    if isinstance(spec, BooleanField):
        return bool | Literal[0, 1]  # true/false, and 0/1 as a training file holds it
    if isinstance(spec, CategoryField):
        if spec.on_unseen == "other":
            return str | int
        return Literal[tuple(spec.values)]
    assert isinstance(spec, EntityField)
    return EntityId


def order_model(contract: FeatureContract) -> type[BaseModel]:
    """The pydantic model of one order of ``contract``: every field (required, or with its
    default), then each entity's optional override."""
    low, high = contract.override_bounds()
    minutes = Annotated[float, Field(gt=low, le=high, allow_inf_nan=False)]
    fields: dict[str, Any] = {}
    for name, spec in contract.fields.items():
        default = ... if spec.required else getattr(spec, "default", None)
        fields[name] = (_annotation(spec), Field(default, description=spec.description))
    for feature in contract.entity_features:
        fields[feature] = (minutes | None, None)
    model: type[BaseModel] = create_model("Order", __base__=_Strict, **fields)
    return model


def floor_contract() -> FeatureContract:
    """``FLOOR_CONTRACT``'s contract (a served contract saved as JSON, or YAML), else the
    default one."""
    path = os.environ.get("FLOOR_CONTRACT")
    return load_contract_file(path) if path else default_contract()


Order = order_model(floor_contract())
"""One order to predict; entity averages are optional overrides of the feature store."""


class FloorAnswer(BaseModel):
    """The service's response fields, filled with constants."""

    predicted_delivery_time_min: float
    confidence_interval_lower: float
    confidence_interval_upper: float
    model_version: str
    prediction_id: str


ANSWER = FloorAnswer(
    predicted_delivery_time_min=30.0,
    confidence_interval_lower=24.0,
    confidence_interval_upper=36.0,
    model_version="floor",
    prediction_id="00000000-0000-4000-8000-000000000000",
)
