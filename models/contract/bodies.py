"""Valid request bodies from a feature contract: the example order, entity ids known and
unknown, and seeded random orders that cover every field's range (the wrk bodies files).

Every tool that builds an order builds it from this package -- the canary's golden orders
(``golden_orders``), the image warm-up, the locust mix, the wrk bodies files, the benchmarks,
the invalid variants a load test sends (``invalid_bodies``) -- so none of them names a feature:
a new field in the contract reaches all of them. Pure: no HTTP, no model store (``models.served_contract``
fetches a running service's contract and a stored model's known entity ids).

A body is what ``POST /v1/predict`` takes: one key per contract field, plus, for each entity
field, its aggregate's name as an optional override (``contract.entity_feature(field)``) of
the feature store's value.
"""

from __future__ import annotations

import json
import math
import random
import re
from collections.abc import Iterator, Mapping, Sequence
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
)

UNKNOWN_SHARE = 0.10
"""Share of entity ids a random order draws outside the known ids (the store's cold path)."""
OVERRIDE_SHARE = 0.05
"""Share of random orders that send an entity's aggregate themselves (per entity field)."""
OMIT_OPTIONAL_SHARE = 0.20
"""Share of random orders that leave an optional field out (its default then applies)."""
DERIVED_IDS = 100
"""Known ids derived from an entity's example when none are given (``r_0042`` -> ``r_0000``
.. ``r_0099``): the synthetic histories number their entities that way."""


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
