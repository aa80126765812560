"""Golden orders of a feature contract, what a canary checks: the example order with ids no
store holds, then one order per cohort band or value of each field, each differing from the
example in that field only.
"""

from __future__ import annotations

import itertools
import json
import math
from typing import Any

from models.contract.bodies import example_order
from models.contract.spec import (
    BooleanField,
    CategoryField,
    FeatureContract,
    IntegerField,
    NumberField,
    cohort_names,
)

MAX_VALUES_PER_FIELD = 12
"""Most golden variations per field (a category may list 250 values)."""


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
