"""Request and response models of the /v1 API, built from the served model's feature contract.

The contract (``models.contract``) is the API: :func:`order_model` turns its fields into the
request model -- kinds, bounds, category values, descriptions and the example -- so the
validation, the 400 answers and the OpenAPI document all say what the model was trained on.
With the default contract the document is exactly the one of the hand-written model it
replaced (``tests/service/snapshots/openapi_v1.json``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, create_model
from pydantic_core import PydanticCustomError

from models.contract import (
    ENTITY_ID_MAX_LENGTH,
    ENTITY_ID_PATTERN,
    BooleanField,
    CategoryField,
    EntityField,
    FeatureContract,
    IntegerField,
    NumberField,
)
from models.features import FeatureSource

EntityId = Annotated[
    str,
    Field(min_length=1, max_length=ENTITY_ID_MAX_LENGTH, pattern=ENTITY_ID_PATTERN),
]
CATEGORY_TEXT_MAX_LENGTH = 128
"""Longest value of a category whose unseen values map to ``other`` (the API takes any text
there; the model sees only the declared values and ``other``)."""
MAX_EXAMPLE_ORDERS = 2
"""Orders in the batch route's example: the contract's example, then its first variation."""


def _true_false_0_1(value: Any) -> bool:
    # One validator, not a union: a union's errors carry its members' tags in their location
    # ("<field>.bool", "<field>.literal[0,1]"), which would count as unknown fields.
    if value is True or value is False or (type(value) is int and value in (0, 1)):
        return bool(value)
    raise PydanticCustomError("bool_type", "Input should be true, false, 0 or 1")


def _whole_number_or_text(value: Any) -> int | str:
    if type(value) is int or (type(value) is str and len(value) <= CATEGORY_TEXT_MAX_LENGTH):
        return value
    raise PydanticCustomError(
        "category_type",
        "Input should be a whole number or text of at most {limit} characters",
        {"limit": CATEGORY_TEXT_MAX_LENGTH},
    )


BooleanValue = Annotated[
    bool, PlainValidator(_true_false_0_1, json_schema_input_type=bool | Literal[0, 1])
]
"""true/false, or 0/1 as training files hold it (a row copied from the export is valid)."""
OpenCategoryText = Annotated[str, Field(max_length=CATEGORY_TEXT_MAX_LENGTH)]
OpenCategoryMixed = Annotated[
    int | str, PlainValidator(_whole_number_or_text, json_schema_input_type=int | OpenCategoryText)
]

ORDER_DOC = "One order to predict."
ORDER_DOC_WITH_ENTITIES = (
    "One order to predict; entity averages are optional overrides of the feature store."
)


def _bound(value: float) -> float | int:
    """A bound as the document shows it: ``50``, not ``50.0`` (YAML numbers load as floats)."""
    return int(value) if float(value).is_integer() else value


def _request_field(spec: Any) -> tuple[Any, Any]:
    """(annotation, FieldInfo) of one contract field in the request model."""
    description = spec.description or None
    default = spec.default if not spec.required else ...
    if isinstance(spec, NumberField):
        return float, Field(
            default,
            ge=_bound(spec.minimum),
            le=_bound(spec.maximum),
            allow_inf_nan=False,
            description=description,
        )
    if isinstance(spec, IntegerField):
        return int, Field(default, ge=spec.minimum, le=spec.maximum, description=description)
    if isinstance(spec, BooleanField):
        return BooleanValue, Field(default, description=description)
    if isinstance(spec, CategoryField):
        if spec.on_unseen == "refuse":
            # An enum: a value not in it is a 400 whose message lists the allowed values.
            return Literal[tuple(spec.values)], Field(default, description=description)
        # Unseen values are the model's "other": any text (bounded), any whole number when the
        # declared values are numbers, either when they are both.
        annotation: Any = OpenCategoryText
        if all(isinstance(v, int) for v in spec.values):
            annotation = int
        elif any(isinstance(v, int) for v in spec.values):
            annotation = OpenCategoryMixed
        return annotation, Field(default, description=description)
    if isinstance(spec, EntityField):
        return EntityId, Field(description=description)
    raise TypeError(f"unknown field kind {spec.kind!r}")


def order_model(contract: FeatureContract) -> type[BaseModel]:
    """The request model of one order under ``contract``, named ``Order``.

    Strict (a JSON string is not a number, a JSON boolean not an integer) and closed (an
    unknown key is a 400). Per field kind: ``number`` -> finite float within its bounds,
    ``integer`` -> int within its bounds, ``boolean`` -> true/false or 0/1, ``category`` -> one
    of its values (or bounded text mapped to ``other`` when the contract says so), ``entity``
    -> an id. Each entity's aggregate is an optional request field overriding the feature store
    (minutes above 0, up to the target's maximum). Optional fields take their default.
    """
    fields: dict[str, Any] = {name: _request_field(spec) for name, spec in contract.fields.items()}
    # Entity averages are minutes: bounds reject nonsense (negative, days) rather than clamp it.
    low, high = contract.override_bounds()
    minutes = Annotated[float, Field(gt=_bound(low), le=_bound(high), allow_inf_nan=False)]
    for entity in contract.entity_fields:
        fields[contract.entity_feature(entity)] = (minutes | None, None)
    return create_model(
        "Order",
        # "example" (OpenAPI 3.0), not "examples": BentoML 1.4's OpenAPI Schema rejects the
        # latter. strict: JSON booleans and numeric strings are not numbers (lax mode took
        # "3.5" and true for a number -- found by fuzzing).
        __config__=ConfigDict(
            extra="forbid", strict=True, json_schema_extra={"example": contract.example_order()}
        ),
        __doc__=ORDER_DOC_WITH_ENTITIES if contract.entity_fields else ORDER_DOC,
        __module__=__name__,
        **fields,
    )


def batch_example(contract: FeatureContract) -> list[dict[str, Any]]:
    """The batch route's example: the contract's example order and its first variation
    (``contract.example_orders()``), e.g. an entity the store does not know, its average
    sent in the request."""
    return contract.example_orders()[:MAX_EXAMPLE_ORDERS]


def feedback_model(contract: FeatureContract) -> type[BaseModel]:
    """The feedback request: a prediction id and the actual delivery time, within the
    contract's target bounds (what a model trained on that target can be scored against)."""
    return create_model(
        "Feedback",
        __config__=ConfigDict(
            extra="forbid",
            strict=True,
            json_schema_extra={
                "example": {
                    "prediction_id": "ec5640c8-e9de-4bfb-8a6e-931cc565e065",
                    "actual_delivery_time_min": 27.0,
                }
            },
        ),
        __doc__="The actual delivery time of an earlier prediction.",
        __module__=__name__,
        prediction_id=(
            str,
            Field(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"),
        ),
        # Physically plausible only: under a minute from order to door does not happen, and
        # past the target's maximum (5 hours by default) the order was lost or cancelled.
        actual_delivery_time_min=(
            float,
            Field(
                ge=_bound(contract.target.minimum),
                le=_bound(contract.target.maximum),
                allow_inf_nan=False,
            ),
        ),
    )


class Prediction(BaseModel):
    """Predicted delivery time with its calibrated 90 % interval."""

    predicted_delivery_time_min: float
    confidence_interval_lower: float
    confidence_interval_upper: float
    model_version: str
    prediction_id: str
    latency_ms: float
    features_source: dict[str, FeatureSource]
    """Per entity aggregate of the contract (``contract.entity_features``), where its value
    came from."""


class FeedbackReceipt(BaseModel):
    """The label joined to its prediction (``status`` duplicate: it had been joined before)."""

    prediction_id: str
    status: Literal["joined", "duplicate"]
    model_version: str
    predicted_delivery_time_min: float
    actual_delivery_time_min: float
    absolute_error_min: float
    within_interval: bool


class BatchPrediction(BaseModel):
    """Predictions in the order of the request's ``orders``."""

    predictions: list[Prediction]
    model_version: str
