"""Request bodies from a feature contract: the example order, seeded random orders that cover
every field, and the invalid variants a load test sends (each naming the field it breaks).

Every tool that builds an order builds it here -- the canary's golden orders, the image warm-up,
the locust mix, the wrk bodies files, the benchmarks -- so none of them names a feature: a new
field in the contract reaches all of them. Pure: no HTTP, no model store (``served`` fetches a
running service's contract and a stored model's known entity ids).

A body is what ``POST /v1/predict`` takes: one key per contract field, plus, for each entity
field, its aggregate's name as an optional override (``contract.entity_feature(field)``) of
the feature store's value.
"""

from __future__ import annotations

import itertools
import json
import math
import random
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from models.contract.spec import (
    ENTITY_ID_MAX_LENGTH,
    BooleanField,
    CategoryField,
    EntityField,
    FeatureContract,
    IntegerField,
    NumberField,
    cohort_names,
)

JSON = "application/json"
UNKNOWN_SHARE = 0.10
"""Share of entity ids a random order draws outside the known ids (the store's cold path)."""
OVERRIDE_SHARE = 0.05
"""Share of random orders that send an entity's aggregate themselves (per entity field)."""
OMIT_OPTIONAL_SHARE = 0.20
"""Share of random orders that leave an optional field out (its default then applies)."""
DERIVED_IDS = 100
"""Known ids derived from an entity's example when none are given (``r_0042`` -> ``r_0000``
.. ``r_0099``): the synthetic histories number their entities that way."""
MAX_BATCH_ROWS = 1000
"""The service's default ``DELIVERY_ETA_MAX_BATCH_ROWS``: one more is the "too many" batch."""
MAX_VALUES_PER_FIELD = 12
"""Most golden variations per field (a category may list 250 values)."""


# -- what a body may carry ---------------------------------------------------------------------


def override_fields(contract: FeatureContract) -> tuple[str, ...]:
    """The optional per-entity override fields (the entity aggregates' names)."""
    return contract.entity_features


def request_fields(contract: FeatureContract) -> tuple[str, ...]:
    """Every key a body may carry: the contract's fields, then the overrides."""
    return (*contract.fields, *override_fields(contract))


def example_order(contract: FeatureContract) -> dict[str, Any]:
    """The contract's example order (every field's example value), as JSON sends it."""
    return dict(contract.example_order())


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# -- entity ids --------------------------------------------------------------------------------


def derived_ids(example: str, count: int = DERIVED_IDS) -> list[str]:
    """``count`` ids shaped like ``example``: its trailing number replaced by 0 .. count-1 at
    the same width (``r_0042`` -> ``r_0000``, ``r_0001``, ...), else ``<example>_<i>``."""
    match = re.fullmatch(r"(.*?)(\d+)", example)
    if match:
        prefix, digits = match.groups()
        width = max(len(digits), len(str(count - 1)))
        ids = [f"{prefix}{i:0{width}d}" for i in range(count)]
    else:
        ids = [f"{example}_{i}" for i in range(count)]
    return [i[-ENTITY_ID_MAX_LENGTH:] for i in ids]


def unknown_id(contract: FeatureContract, field: str, rng: random.Random) -> str:
    """An id of entity ``field`` no feature store holds (``<key>_new_<n>``)."""
    return f"{contract.entity_key(field)}_new_{rng.randrange(1_000_000)}"[-ENTITY_ID_MAX_LENGTH:]


# -- random orders -----------------------------------------------------------------------------


@dataclass(frozen=True)
class OrderGenerator:
    """Seeded random valid orders of a contract.

    Each number mostly lands around its example (log-normal spread), sometimes anywhere in its
    range and sometimes exactly on a bound, so every field's whole range is sent; integers,
    booleans and categories take each of their values; an optional field is sometimes left
    out. Entity ids come from ``known_ids`` (default: :func:`derived_ids` of the example) and,
    :data:`UNKNOWN_SHARE` of the time, are ids no store holds; :data:`OVERRIDE_SHARE` of the
    orders send an entity's aggregate themselves (drawn from ``override_values`` if given, else
    from the lower fifth of the target's range).
    """

    contract: FeatureContract
    known_ids: Mapping[str, Sequence[str]] | None = None
    override_values: Mapping[str, Sequence[float]] | None = None
    unknown_share: float = UNKNOWN_SHARE
    override_share: float = OVERRIDE_SHARE

    def __post_init__(self) -> None:
        known = dict(self.known_ids or {})
        for name in self.contract.entity_fields:
            spec = self.contract.fields[name]
            assert isinstance(spec, EntityField)
            if not known.get(name):
                known[name] = derived_ids(spec.example)
            else:
                known[name] = list(known[name])
        object.__setattr__(self, "known_ids", known)

    def order(self, rng: random.Random) -> dict[str, Any]:
        """One random valid order."""
        order: dict[str, Any] = {}
        for name, spec in self.contract.fields.items():
            if isinstance(spec, EntityField):
                known = self.known_ids[name]  # type: ignore[index]
                if rng.random() < self.unknown_share:
                    order[name] = unknown_id(self.contract, name, rng)
                else:
                    order[name] = known[rng.randrange(len(known))]
                continue
            if not spec.required and rng.random() < OMIT_OPTIONAL_SHARE:
                continue
            order[name] = random_value(spec, rng)
        for field in self.contract.entity_fields:
            if rng.random() < self.override_share:
                feature = self.contract.entity_feature(field)
                order[feature] = self._override(feature, rng)
        return order

    def orders(self, rng: random.Random, count: int) -> list[dict[str, Any]]:
        """``count`` random valid orders."""
        return [self.order(rng) for _ in range(count)]

    def _override(self, feature: str, rng: random.Random) -> float:
        values = (self.override_values or {}).get(feature)
        if values:
            return float(values[rng.randrange(len(values))])
        target = self.contract.target
        span = target.maximum - target.minimum
        low, high = target.minimum + 0.05 * span, target.minimum + 0.2 * span
        return round(max(rng.uniform(low, high), 0.1), 1)


def random_value(spec: Any, rng: random.Random) -> Any:
    """A random valid value of a (non-entity) field."""
    if isinstance(spec, BooleanField):
        value = rng.random() < 0.5
        # The API takes 1/0 as well (a training file's 0/1 column): send both forms.
        return int(value) if rng.random() < 0.2 else value
    if isinstance(spec, CategoryField):
        if spec.on_unseen == "other" and rng.random() < 0.02:
            return f"unseen_{rng.randrange(1000)}"  # mapped to other_value, not refused
        return spec.values[rng.randrange(len(spec.values))]
    if isinstance(spec, IntegerField):
        low, high = spec.minimum, spec.maximum
        if high - low <= 20 or rng.random() < 0.1:
            return rng.randint(low, high)
        return int(_clamp(round(_around(spec.example, low, high, rng)), low, high))
    if isinstance(spec, NumberField):
        bottom, top = spec.minimum, spec.maximum
        draw = rng.random()
        if draw < 0.02:
            return float(rng.choice((bottom, top)))
        near = _around(spec.example, bottom, top, rng)
        return float(
            _clamp(round(rng.uniform(bottom, top) if draw < 0.12 else near, 2), bottom, top)
        )
    raise TypeError(f"no random value for a {type(spec).__name__}")


def _around(example: float, low: float, high: float, rng: random.Random) -> float:
    """Near the example: a log-normal spread for a positive one, else a normal one."""
    if example > 0:
        return example * math.exp(rng.gauss(0.0, 0.6))
    return example + rng.gauss(0.0, (high - low) / 20)


def _clamp(value: float, low: float, high: float) -> float:
    return min(max(value, low), high)


def body_lines(
    contract: FeatureContract,
    *,
    count: int,
    rows: int | None = None,
    seed: int = 0,
    known_ids: Mapping[str, Sequence[str]] | None = None,
) -> Iterator[str]:
    """``count`` JSON bodies, one per line: single orders, or with ``rows`` a batch
    (``{"orders": [...]}``) each. What a wrk script cycles through (it cannot build bodies
    from a contract itself)."""
    generator = OrderGenerator(contract, known_ids)
    rng = random.Random(seed)
    for _ in range(count):
        if rows is None:
            yield json.dumps(generator.order(rng), separators=(",", ":"))
        else:
            batch = {"orders": generator.orders(rng, rows)}
            yield json.dumps(batch, separators=(",", ":"))


# -- invalid bodies ----------------------------------------------------------------------------


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


# -- golden orders (the canary) ----------------------------------------------------------------


def canary_ids(contract: FeatureContract) -> dict[str, str]:
    """An id per entity field no store holds (``canary_<key>``): a golden order's entity
    aggregates are then the model's defaults (or its overrides), never a snapshot's values."""
    return {name: f"canary_{contract.entity_key(name)}" for name in contract.entity_fields}


def golden_variations(contract: FeatureContract) -> list[tuple[str, dict[str, Any]]]:
    """(name, order) pairs a canary checks: the example order (with :func:`canary_ids`), then
    one order per cohort band of each number / integer cohort field, per value of each boolean
    and category field (at most :data:`MAX_VALUES_PER_FIELD` per field, spread over its
    values; an unseen value too when it maps to ``other``), each differing from the example in
    that field only."""
    base = {**example_order(contract), **canary_ids(contract)}
    cases: list[tuple[str, dict[str, Any]]] = [("example", base)]
    seen = {json.dumps(base, sort_keys=True)}
    for name, spec in contract.fields.items():
        for label, value in _field_variations(name, spec):
            order = {**base, name: value}
            key = json.dumps(order, sort_keys=True)
            if key not in seen:
                seen.add(key)
                cases.append((label, order))
    return cases


def _field_variations(name: str, spec: Any) -> list[tuple[str, Any]]:
    cohort = getattr(spec, "cohort", None)
    if isinstance(spec, NumberField | IntegerField):
        if cohort is None or not cohort.edges:
            return []
        names = cohort_names(name, spec, cohort)
        bounds = [spec.minimum, *cohort.edges, spec.maximum]
        out: list[tuple[str, Any]] = []
        for band, (start, end) in enumerate(itertools.pairwise(bounds)):
            low, high = max(start, spec.minimum), min(end, spec.maximum)
            last = band == len(bounds) - 2
            value: float
            if isinstance(spec, IntegerField):
                # A band holds [low, high) -- the last one [low, high]: its middle integer.
                top = math.floor(high) if last else math.ceil(high) - 1
                if top < math.ceil(low):
                    continue
                value = (math.ceil(low) + top) // 2
            else:
                value = round((low + high) / 2, 3)
            out.append((f"{name} {names[band]}", value))
        return out
    # A boolean's or category's variations are named by their cohort when the field has one.
    labels = cohort_names(name, spec, cohort) if cohort is not None else None
    if isinstance(spec, BooleanField):
        return [
            (f"{name} {labels[i]}" if labels else f"{name}={value}", value)
            for i, value in enumerate((False, True))
        ]
    if isinstance(spec, CategoryField):
        indices = list(range(len(spec.values)))
        if len(indices) > MAX_VALUES_PER_FIELD:
            step = len(indices) / MAX_VALUES_PER_FIELD
            indices = [int(i * step) for i in range(MAX_VALUES_PER_FIELD)]
        out = [
            (f"{name} {labels[i]}" if labels else f"{name}={spec.values[i]}", spec.values[i])
            for i in indices
        ]
        if spec.on_unseen == "other":  # a value outside the list: the model's other_value
            label = labels[-1] if labels else f"unseen (-> {spec.other_value})"
            out.append((f"{name} {label}", "canary_unseen_value"))
        return out
    return []
