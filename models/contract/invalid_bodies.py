"""Invalid request bodies from a feature contract: every field-level way to break an order
(each naming the field it breaks), and whole bodies ``POST /v1/predict`` and
``POST /v1/predict/batch`` must refuse -- what the load tests and fuzzers send.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from models.contract.bodies import override_fields, request_fields
from models.contract.spec import (
    ENTITY_ID_MAX_LENGTH,
    BooleanField,
    CategoryField,
    EntityField,
    FeatureContract,
    IntegerField,
    NumberField,
)

JSON = "application/json"
MAX_BATCH_ROWS = 1000
"""The service's default ``DELIVERY_ETA_MAX_BATCH_ROWS``: one more is the "too many" batch."""


@dataclass(frozen=True)
class InvalidVariant:
    """One way to break a request; :meth:`body` builds it from valid orders."""

    kind: str
    """What is wrong, in words (``<field> above its maximum <bound>``)."""
    field: str | None
    """The field it breaks; None when the body as a whole is wrong (not JSON, no envelope)."""
    build: Callable[[list[dict[str, Any]], random.Random], bytes]
    content_type: str = JSON
    field_named: bool = True
    """Whether the service's 400 must name :attr:`field` (False when the body is not JSON the
    API can parse, e.g. a ``NaN`` token: the refusal may come from the JSON parser)."""

    def body(self, orders: list[dict[str, Any]], rng: random.Random) -> bytes:
        """The invalid body, from at least one valid order."""
        return self.build(orders, rng)


@dataclass(frozen=True)
class OrderBreak:
    """A change that makes one order invalid, naming the field it breaks."""

    kind: str
    field: str
    apply: Callable[[dict[str, Any]], dict[str, Any]]
    json_parsable: bool = True

    def broken(self, order: Mapping[str, Any]) -> dict[str, Any]:
        """``order`` with this break applied (a new dict)."""
        return self.apply(dict(order))


def _set(field: str, value: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def apply(order: dict[str, Any]) -> dict[str, Any]:
        order[field] = value
        return order

    return apply


def _drop(field: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def apply(order: dict[str, Any]) -> dict[str, Any]:
        order.pop(field, None)
        return order

    return apply


def order_breaks(contract: FeatureContract) -> list[OrderBreak]:
    """Every field-level way to make an order of ``contract`` invalid: out of range, text in
    a number, a fraction in an integer, NaN / Infinity, missing a required field, an unseen
    category (when unseen values are refused), a bad or too long id, an override out of range,
    an unknown field."""
    breaks: list[OrderBreak] = []
    for name, spec in contract.fields.items():
        if spec.required:
            breaks.append(OrderBreak(f"missing {name}", name, _drop(name)))
        if isinstance(spec, NumberField | IntegerField):
            span = spec.maximum - spec.minimum
            above = spec.maximum + max(span / 2, 1)
            below = spec.minimum - max(span / 2, 1)
            if isinstance(spec, IntegerField):
                above, below = math.ceil(above), math.floor(below)
            breaks += [
                OrderBreak(f"{name} above its maximum {spec.maximum:g}", name, _set(name, above)),
                OrderBreak(f"{name} below its minimum {spec.minimum:g}", name, _set(name, below)),
                OrderBreak(f"{name} as text", name, _set(name, "far")),
            ]
            if isinstance(spec, IntegerField):
                breaks.append(
                    OrderBreak(f"{name} a fraction", name, _set(name, spec.minimum + 0.5))
                )
            else:
                breaks += [
                    OrderBreak(f"{name} NaN", name, _set(name, math.nan), json_parsable=False),
                    OrderBreak(f"{name} Infinity", name, _set(name, math.inf), False),
                ]
        elif isinstance(spec, BooleanField):
            breaks += [
                OrderBreak(f"{name} as text", name, _set(name, "maybe")),
                OrderBreak(f"{name} 2", name, _set(name, 2)),
            ]
        elif isinstance(spec, CategoryField):
            if spec.on_unseen == "refuse":
                unseen = _unseen_value(spec)
                breaks.append(OrderBreak(f"{name} unseen value", name, _set(name, unseen)))
            breaks.append(OrderBreak(f"{name} a list", name, _set(name, list(spec.values[:2]))))
        elif isinstance(spec, EntityField):
            breaks += [
                OrderBreak(f"{name} bad characters", name, _set(name, "x 42; DROP")),
                OrderBreak(f"{name} too long", name, _set(name, "x" * (ENTITY_ID_MAX_LENGTH + 1))),
                OrderBreak(f"{name} empty", name, _set(name, "")),
            ]
    _, high = contract.override_bounds()
    for feature in override_fields(contract):
        breaks += [
            OrderBreak(f"{feature} override above {high:g}", feature, _set(feature, high + 1)),
            OrderBreak(f"{feature} override zero", feature, _set(feature, 0)),
        ]
    unknown = _unknown_field(contract)
    breaks.append(OrderBreak("unknown field", unknown, _set(unknown, 3)))
    return breaks


def _unseen_value(spec: CategoryField) -> str:
    value = "not_a_value"
    while value in spec.values:
        value += "_x"
    return value


def _unknown_field(contract: FeatureContract) -> str:
    name = "tip"
    while name in request_fields(contract):
        name += "_x"
    return name


def _dump(payload: Any) -> bytes:
    return json.dumps(payload).encode()


def _single(brk: OrderBreak) -> InvalidVariant:
    def build(orders: list[dict[str, Any]], rng: random.Random) -> bytes:
        return _dump(brk.broken(orders[0]))

    return InvalidVariant(brk.kind, brk.field, build, field_named=brk.json_parsable)


def invalid_predict_variants(contract: FeatureContract) -> list[InvalidVariant]:
    """Bodies ``POST /v1/predict`` must refuse with a 4xx: every :func:`order_breaks`, and
    bodies that are not one JSON order (truncated, a list, empty, not JSON)."""
    variants = [_single(brk) for brk in order_breaks(contract)]
    variants += [
        InvalidVariant("truncated JSON", None, lambda o, r: _dump(o[0])[:-7]),
        InvalidVariant("JSON list", None, lambda o, r: _dump([o[0]])),
        InvalidVariant("empty body", None, lambda o, r: b""),
        InvalidVariant(
            "not JSON",
            None,
            lambda o, r: "&".join(f"{k}={v}" for k, v in o[0].items()).encode(),
            content_type="text/plain",
        ),
    ]
    return variants


def invalid_batch_variants(
    contract: FeatureContract, max_batch_rows: int = MAX_BATCH_ROWS
) -> list[InvalidVariant]:
    """Bodies ``POST /v1/predict/batch`` must refuse: no orders, orders not a list, one
    invalid order among valid ones (a random :func:`order_breaks`), more than
    ``max_batch_rows`` orders, a bare order without the envelope."""
    parsable = [b for b in order_breaks(contract) if b.json_parsable]

    def one_bad(orders: list[dict[str, Any]], rng: random.Random) -> bytes:
        brk = parsable[rng.randrange(len(parsable))]
        return _dump({"orders": [*orders[:20], brk.broken(orders[-1])]})

    return [
        InvalidVariant("no orders", None, lambda o, r: _dump({"orders": []})),
        InvalidVariant("orders not a list", None, lambda o, r: _dump({"orders": o[0]})),
        # The broken field is drawn per body: the kind names no single field.
        InvalidVariant("one bad order in the batch", None, one_bad),
        InvalidVariant(
            "too many orders",
            None,
            lambda o, r: _dump({"orders": [o[0]] * (max_batch_rows + 1)}),
        ),
        InvalidVariant("bare order, no envelope", None, lambda o, r: _dump(o[0])),
    ]
