"""The request model of one order, built from a feature contract: what the API validates,
and what every tool checks a body against (``order_problems``).

Pure pydantic (no HTTP): the service's ``/v1`` routes take :func:`order_model` as their input
(``serving.schema``), and the load tests, the canary and the label export ask
:func:`order_problems` / :func:`value_problem` -- the same rules, not a copy of them.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    TypeAdapter,
    ValidationError,
    create_model,
)
from pydantic_core import PydanticCustomError

from models.contract.spec import (
    ENTITY_ID_MAX_LENGTH,
    ENTITY_ID_PATTERN,
    BooleanField,
    CategoryField,
    EntityField,
    FeatureContract,
    IntegerField,
    NumberField,
)

EntityId = Annotated[
    str,
    Field(min_length=1, max_length=ENTITY_ID_MAX_LENGTH, pattern=ENTITY_ID_PATTERN),
]
CATEGORY_TEXT_MAX_LENGTH = 128
"""Longest value of a category whose unseen values map to ``other`` (the API takes any text
there; the model sees only the declared values and ``other``)."""


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


def bound(value: float) -> float | int:
    """A bound as the document shows it: ``50``, not ``50.0`` (YAML numbers load as floats)."""
    return int(value) if float(value).is_integer() else value


def _request_field(spec: Any) -> tuple[Any, Any]:
    """(annotation, FieldInfo) of one contract field in the request model."""
    description = spec.description or None
    default = spec.default if not spec.required else ...
    if isinstance(spec, NumberField):
        return float, Field(
            default,
            ge=bound(spec.minimum),
            le=bound(spec.maximum),
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
    minutes = Annotated[float, Field(gt=bound(low), le=bound(high), allow_inf_nan=False)]
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


@lru_cache(maxsize=16)
def _cached_order_model(contract_json: str) -> type[BaseModel]:
    return order_model(FeatureContract.model_validate_json(contract_json))


def order_problems(contract: FeatureContract, order: Any) -> list[str]:
    """Why the API serving ``contract`` would refuse ``order`` (empty: it accepts it), one
    ``field: message`` per problem -- the request model's own validation."""
    model = _cached_order_model(json.dumps(contract.metadata()))
    try:
        model.model_validate(order)
    except ValidationError as exc:
        return [
            f"{'.'.join(str(p) for p in error['loc']) or 'body'}: {error['msg']}"
            for error in exc.errors(include_url=False)
        ]
    return []


@lru_cache(maxsize=256)
def _field_adapter(spec_json: str, kind: str) -> TypeAdapter[Any]:
    spec = _FIELD_KINDS[kind].model_validate_json(spec_json)
    annotation, info = _request_field(spec)
    return TypeAdapter(Annotated[annotation, info], config=ConfigDict(strict=True))  # type: ignore[arg-type]


_FIELD_KINDS: dict[str, Any] = {
    "number": NumberField,
    "integer": IntegerField,
    "boolean": BooleanField,
    "category": CategoryField,
    "entity": EntityField,
}


def value_problem(spec: Any, value: Any) -> str | None:
    """Why the API refuses ``value`` for a field declared by ``spec`` (None: it takes it)."""
    try:
        _field_adapter(spec.model_dump_json(), spec.kind).validate_python(value)
    except ValidationError as exc:
        return "; ".join(error["msg"] for error in exc.errors(include_url=False))
    return None
