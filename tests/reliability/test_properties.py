"""Hypothesis properties of request validation and feature assembly (no server).

* ``serving.schema.Order``: whatever it accepts has finite, in-range fields and well-formed ids;
  every out-of-range (or non-finite, or malformed) value is rejected with that field named.
* ``models.features.assemble_features``: shape and column order, request > online > default
  precedence with matching ``features_source``, no NaN, and no training/serving skew against
  ``training_frame`` for the same orders and entity table.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from models.features import (
    ENTITY_FEATURES,
    FEATURE_NAMES,
    EntityFeatures,
    OnlineValues,
    assemble_features,
    training_frame,
)
from serving.schema import Order

PROPERTY_SETTINGS = settings(
    max_examples=300,
    deadline=None,
    database=None,  # no .hypothesis/ directory in the work tree
    suppress_health_check=[HealthCheck.too_slow],
)
# Assembly examples are lists of orders, each costlier to generate: fewer of them.
ASSEMBLY_SETTINGS = settings(PROPERTY_SETTINGS, max_examples=150)
ID_PATTERN = re.compile(r"[A-Za-z0-9_.:-]{1,64}")  # used with fullmatch
ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:-"

# Valid ranges (inclusive flags) straight from the README's field table.
RANGES: dict[str, tuple[float, bool, float]] = {
    # name: (low, low_inclusive, high)  -- every upper bound is inclusive
    "distance_km": (0.1, True, 50.0),
    "order_value": (0.0, True, 100_000.0),
    "restaurant_avg_delivery_time": (0.0, False, 300.0),
    "driver_avg_delivery_time": (0.0, False, 300.0),
}


def in_range(name: str) -> st.SearchStrategy[float]:
    low, inclusive, high = RANGES[name]
    return st.floats(min_value=low, max_value=high, exclude_min=not inclusive, allow_nan=False).map(
        float
    )


entity_ids = st.text(alphabet=ID_ALPHABET, min_size=1, max_size=64)


@st.composite
def valid_orders(draw: st.DrawFn) -> dict[str, Any]:
    order: dict[str, Any] = {
        "restaurant_id": draw(entity_ids),
        "driver_id": draw(entity_ids),
        "distance_km": draw(in_range("distance_km")),
        "is_peak_hour": draw(st.sampled_from([0, 1])),
        "order_value": draw(in_range("order_value")),
    }
    for name in ENTITY_FEATURES:
        value = draw(st.one_of(st.none(), in_range(name)))
        if value is not None or draw(st.booleans()):
            order[name] = value  # absent, explicit null, or a value
    return order


def out_of_range(name: str) -> st.SearchStrategy[Any]:
    """Values of the right JSON type that the field must refuse."""
    if name in ("restaurant_id", "driver_id"):
        bad_char = st.characters(blacklist_characters=ID_ALPHABET, blacklist_categories=("Cs",))
        return st.one_of(
            st.just(""),
            st.text(alphabet=ID_ALPHABET, min_size=65, max_size=200),
            st.tuples(entity_ids, bad_char, st.text(alphabet=ID_ALPHABET, max_size=5)).map(
                lambda parts: parts[0][:58] + parts[1] + parts[2]
            ),
        )
    if name == "is_peak_hour":
        return st.integers().filter(lambda v: v not in (0, 1))
    low, inclusive, high = RANGES[name]
    below = st.floats(max_value=low, exclude_max=inclusive, allow_nan=False)
    above = st.floats(min_value=high, exclude_min=True, allow_nan=False)
    return st.one_of(below, above, st.just(math.nan), st.just(math.inf), st.just(-math.inf))


FIELDS = (
    "restaurant_id",
    "driver_id",
    "distance_km",
    "is_peak_hour",
    "order_value",
    *ENTITY_FEATURES,
)


def _assert_in_range(order: Order) -> None:
    assert ID_PATTERN.fullmatch(order.restaurant_id) and ID_PATTERN.fullmatch(order.driver_id)
    assert order.is_peak_hour in (0, 1)
    for name, (low, inclusive, high) in RANGES.items():
        value = getattr(order, name)
        if value is None:
            assert name in ENTITY_FEATURES
            continue
        assert isinstance(value, float) and math.isfinite(value), (name, value)
        assert (low <= value if inclusive else low < value) and value <= high, (name, value)


# --------------------------------------------------------------------------- validation


@PROPERTY_SETTINGS
@given(order=valid_orders())
def test_every_in_range_order_is_accepted_and_stays_in_range(order: dict[str, Any]) -> None:
    for parsed in (Order.model_validate(order), Order.model_validate_json(json.dumps(order))):
        _assert_in_range(parsed)
        for name in FIELDS:
            assert getattr(parsed, name) == order.get(name)


json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**7), max_value=10**7),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=80),
)


@PROPERTY_SETTINGS
@given(base=valid_orders(), mutations=st.dictionaries(st.sampled_from(FIELDS), json_scalars))
def test_whatever_is_accepted_has_finite_in_range_fields(
    base: dict[str, Any], mutations: dict[str, Any]
) -> None:
    """Arbitrary JSON values in any fields: if validation passes, the result is still sane."""
    try:
        parsed = Order.model_validate({**base, **mutations})
    except ValidationError:
        return
    _assert_in_range(parsed)


@PROPERTY_SETTINGS
@given(base=valid_orders(), data=st.data())
def test_an_out_of_range_value_is_rejected_naming_its_field(
    base: dict[str, Any], data: st.DataObject
) -> None:
    name = data.draw(st.sampled_from(FIELDS))
    bad = data.draw(out_of_range(name))
    with pytest.raises(ValidationError) as raised:
        Order.model_validate({**base, name: bad})
    named = {error["loc"][0] for error in raised.value.errors()}
    assert named == {name}, raised.value.errors()


@PROPERTY_SETTINGS
@given(
    base=valid_orders(),
    extra=st.text(min_size=1, max_size=20).filter(lambda k: k not in FIELDS),
    value=json_scalars,
)
def test_an_unknown_field_is_rejected_naming_it(
    base: dict[str, Any], extra: str, value: Any
) -> None:
    with pytest.raises(ValidationError) as raised:
        Order.model_validate({**base, extra: value})
    assert [e["loc"] for e in raised.value.errors()] == [(extra,)]


@PROPERTY_SETTINGS
@given(base=valid_orders(), missing=st.sampled_from(FIELDS[:5]))
def test_a_missing_required_field_is_rejected_naming_it(base: dict[str, Any], missing: str) -> None:
    with pytest.raises(ValidationError) as raised:
        Order.model_validate({k: v for k, v in base.items() if k != missing})
    assert [e["loc"] for e in raised.value.errors()] == [(missing,)]


# --------------------------------------------------------------------------- assembly


positive_minutes = st.floats(min_value=0.5, max_value=300, allow_nan=False)


@st.composite
def assembly_inputs(
    draw: st.DrawFn,
) -> tuple[list[Order], OnlineValues, dict[str, float]]:
    orders = [Order.model_validate(o) for o in draw(st.lists(valid_orders(), max_size=25))]
    failed = draw(st.booleans())
    online = {
        name: [None if failed else draw(st.one_of(st.none(), positive_minutes)) for _ in orders]
        for name in ENTITY_FEATURES
    }
    defaults = {name: draw(positive_minutes) for name in ENTITY_FEATURES}
    return orders, OnlineValues(**online, failed=failed), defaults


@ASSEMBLY_SETTINGS
@given(inputs=assembly_inputs())
def test_assembly_shape_order_precedence_and_no_nan(
    inputs: tuple[list[Order], OnlineValues, dict[str, float]],
) -> None:
    orders, online, defaults = inputs
    matrix, sources = assemble_features(orders, online, defaults)

    assert matrix.shape == (len(orders), len(FEATURE_NAMES))
    assert matrix.dtype == np.float64
    assert np.isfinite(matrix).all()
    assert len(sources) == len(orders)
    column = {name: i for i, name in enumerate(FEATURE_NAMES)}
    for row, order in enumerate(orders):
        for name in ("distance_km", "is_peak_hour", "order_value"):
            assert matrix[row, column[name]] == float(getattr(order, name))
        assert set(sources[row]) == set(ENTITY_FEATURES)
        for name in ENTITY_FEATURES:
            requested = getattr(order, name)
            stored = getattr(online, name)[row]
            if requested is not None:
                expected, source = requested, "request"
            elif stored is not None:
                expected, source = stored, "online"
            else:
                expected, source = defaults[name], "default"
            assert matrix[row, column[name]] == expected
            assert sources[row][name] == source
        if online.failed:
            assert "online" not in sources[row].values()


@st.composite
def orders_and_entities(draw: st.DrawFn) -> tuple[list[Order], EntityFeatures]:
    restaurants = draw(st.lists(entity_ids, min_size=1, max_size=8, unique=True))
    drivers = draw(st.lists(entity_ids, min_size=1, max_size=8, unique=True))
    # Only some entities are in the table: the rest fall back to defaults, online and offline.
    entities = EntityFeatures(
        restaurant_avg_delivery_time={
            r: draw(positive_minutes) for r in restaurants if draw(st.booleans())
        },
        driver_avg_delivery_time={
            d: draw(positive_minutes) for d in drivers if draw(st.booleans())
        },
        defaults={name: draw(positive_minutes) for name in ENTITY_FEATURES},
        history_end="2026-01-01 00:00:00",
    )
    orders = [
        Order.model_validate(
            {
                **{k: v for k, v in draw(valid_orders()).items() if k not in ENTITY_FEATURES},
                "restaurant_id": draw(st.sampled_from(restaurants)),
                "driver_id": draw(st.sampled_from(drivers)),
            }
        )
        for _ in range(draw(st.integers(min_value=1, max_value=20)))
    ]
    return orders, entities


@ASSEMBLY_SETTINGS
@given(case=orders_and_entities())
def test_serving_assembly_matches_the_training_frame(
    case: tuple[list[Order], EntityFeatures],
) -> None:
    """No training/serving skew: the online path builds the rows the model was trained on."""
    orders, entities = case
    online = OnlineValues(
        restaurant_avg_delivery_time=[
            entities.restaurant_avg_delivery_time.get(o.restaurant_id) for o in orders
        ],
        driver_avg_delivery_time=[
            entities.driver_avg_delivery_time.get(o.driver_id) for o in orders
        ],
    )
    served, _ = assemble_features(orders, online, entities.defaults)
    offline = training_frame(pd.DataFrame([o.model_dump() for o in orders]), entities)
    assert list(offline.columns) == list(FEATURE_NAMES)
    np.testing.assert_array_equal(served, offline.to_numpy(dtype=np.float64))


def test_assembly_of_no_orders_is_an_empty_matrix() -> None:
    matrix, sources = assemble_features(
        [], OnlineValues([], []), dict.fromkeys(ENTITY_FEATURES, 1.0)
    )
    assert matrix.shape == (0, len(FEATURE_NAMES)) and sources == []


# A guard that the strategies above really produce what they claim (cheap sanity).
@settings(max_examples=50, database=None, deadline=None)
@given(name=st.sampled_from(FIELDS), data=st.data())
def test_out_of_range_strategy_never_yields_a_valid_value(name: str, data: st.DataObject) -> None:
    value = data.draw(out_of_range(name))
    if name in ("restaurant_id", "driver_id"):
        assume(isinstance(value, str))
        assert not ID_PATTERN.fullmatch(value)
    elif name == "is_peak_hour":
        assert value not in (0, 1)
    else:
        low, inclusive, high = RANGES[name]
        assert not (
            math.isfinite(value) and (low <= value if inclusive else low < value) and value <= high
        )
