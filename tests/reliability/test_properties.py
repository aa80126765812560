"""Hypothesis properties of request validation and feature assembly (no server), for the
default contract and for a contract of another team's own columns (categories, a boolean, an
optional field, another entity).

* ``serving.schema.order_model(contract)``: whatever it accepts has finite, in-range fields,
  declared category values and well-formed ids; every out-of-range (or non-finite, or
  malformed, or undeclared) value is rejected with that field named.
* ``models.features.FeatureAssembler``: shape and column order, request > online > default
  precedence with matching ``features_source``, no NaN, and no training/serving skew against
  ``training_frame`` for the same orders and entity tables.
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
from pydantic import BaseModel, ValidationError

from models.contract import CategoryField, FeatureContract, default_contract
from models.features import (
    FEATURE_SOURCES,
    EntityFeatures,
    FeatureAssembler,
    OnlineValues,
    training_frame,
)
from serving.schema import CATEGORY_TEXT_MAX_LENGTH, order_model
from tests.harness.contract_models import kitchen_contract

PROPERTY_SETTINGS = settings(
    max_examples=200,
    deadline=None,
    database=None,  # no .hypothesis/ directory in the work tree
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
# Assembly examples are lists of orders, each costlier to generate: fewer of them.
ASSEMBLY_SETTINGS = settings(PROPERTY_SETTINGS, max_examples=100)
ID_PATTERN = re.compile(r"[A-Za-z0-9_.:-]{1,64}")  # used with fullmatch
ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:-"

CONTRACTS = {"default": default_contract(), "kitchen": kitchen_contract()}
MODELS = {name: order_model(contract) for name, contract in CONTRACTS.items()}


@pytest.fixture(params=sorted(CONTRACTS))
def contract(request: pytest.FixtureRequest) -> FeatureContract:
    return CONTRACTS[request.param]


def _model(contract: FeatureContract) -> type[BaseModel]:
    return next(MODELS[name] for name, c in CONTRACTS.items() if c is contract)


def _fields(contract: FeatureContract) -> tuple[str, ...]:
    """Every request field: the contract's, then each entity's aggregate override."""
    return (*contract.fields, *contract.entity_features)


entity_ids = st.text(alphabet=ID_ALPHABET, min_size=1, max_size=64)


def _minutes(contract: FeatureContract) -> st.SearchStrategy[float]:
    return st.floats(min_value=0, max_value=contract.target.maximum, exclude_min=True).map(float)


def valid_value(contract: FeatureContract, name: str) -> st.SearchStrategy[Any]:
    """Values the field must accept."""
    if name in contract.entity_features:
        return _minutes(contract)
    spec = contract.fields[name]
    if spec.kind == "number":
        return st.floats(min_value=spec.minimum, max_value=spec.maximum).map(float)
    if spec.kind == "integer":
        return st.integers(min_value=spec.minimum, max_value=spec.maximum)
    if spec.kind == "boolean":
        return st.sampled_from([True, False, 0, 1])  # as JSON or as the training file holds it
    if isinstance(spec, CategoryField):
        declared = st.sampled_from(list(spec.values))
        if spec.on_unseen == "other":
            return st.one_of(declared, st.text(max_size=CATEGORY_TEXT_MAX_LENGTH))
        return declared
    return entity_ids


@st.composite
def valid_orders(draw: st.DrawFn, contract: FeatureContract) -> dict[str, Any]:
    order: dict[str, Any] = {}
    for name, spec in contract.fields.items():
        if spec.required or draw(st.booleans()):  # an optional field may be left out
            order[name] = draw(valid_value(contract, name))
    for name in contract.entity_features:
        value = draw(st.one_of(st.none(), _minutes(contract)))
        if value is not None or draw(st.booleans()):
            order[name] = value  # absent, explicit null, or a value
    return order


def out_of_range(contract: FeatureContract, name: str) -> st.SearchStrategy[Any]:
    """Values of a plausible JSON type that the field must refuse."""
    spec = contract.fields.get(name)
    if spec is not None and spec.kind == "entity":
        bad_char = st.characters(blacklist_characters=ID_ALPHABET, blacklist_categories=("Cs",))
        return st.one_of(
            st.just(""),
            st.text(alphabet=ID_ALPHABET, min_size=65, max_size=200),
            st.tuples(entity_ids, bad_char, st.text(alphabet=ID_ALPHABET, max_size=5)).map(
                lambda parts: parts[0][:58] + parts[1] + parts[2]
            ),
        )
    if spec is not None and spec.kind == "integer":
        return st.integers().filter(lambda v: not spec.minimum <= v <= spec.maximum)
    if spec is not None and spec.kind == "boolean":
        return st.one_of(
            st.integers().filter(lambda v: v not in (0, 1)), st.floats(), st.text(max_size=5)
        )
    if isinstance(spec, CategoryField):
        if spec.on_unseen == "other":
            return st.text(min_size=CATEGORY_TEXT_MAX_LENGTH + 1, max_size=300)
        return st.text(max_size=20).filter(lambda v: v not in spec.values)
    if spec is not None:
        low, high, exclusive = spec.minimum, spec.maximum, False
    else:  # an entity aggregate override
        low, high, exclusive = 0.0, contract.target.maximum, True
    below = st.floats(max_value=low, exclude_max=not exclusive, allow_nan=False)
    above = st.floats(min_value=high, exclude_min=True, allow_nan=False)
    return st.one_of(below, above, st.just(math.nan), st.just(math.inf), st.just(-math.inf))


def _assert_in_range(contract: FeatureContract, order: BaseModel) -> None:
    for name, spec in contract.fields.items():
        value = getattr(order, name)
        if spec.kind == "entity":
            assert ID_PATTERN.fullmatch(value), (name, value)
        elif spec.kind == "boolean":
            assert isinstance(value, bool), (name, value)
        elif isinstance(spec, CategoryField):
            assert value in spec.values or (
                spec.on_unseen == "other" and len(value) <= CATEGORY_TEXT_MAX_LENGTH
            ), (name, value)
        else:
            assert math.isfinite(value) and spec.minimum <= value <= spec.maximum, (name, value)
            assert isinstance(value, float if spec.kind == "number" else int), (name, value)
    for name in contract.entity_features:
        value = getattr(order, name)
        if value is not None:
            assert isinstance(value, float) and math.isfinite(value), (name, value)
            assert 0 < value <= contract.target.maximum, (name, value)


# --------------------------------------------------------------------------- validation


@PROPERTY_SETTINGS
@given(data=st.data())
def test_every_in_range_order_is_accepted_and_stays_in_range(
    contract: FeatureContract, data: st.DataObject
) -> None:
    order = data.draw(valid_orders(contract))
    model = _model(contract)
    for parsed in (model.model_validate(order), model.model_validate_json(json.dumps(order))):
        _assert_in_range(contract, parsed)
        for name in _fields(contract):
            spec = contract.fields.get(name)
            default = getattr(spec, "default", None)
            assert getattr(parsed, name) == order.get(name, default)


json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**7), max_value=10**7),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=80),
)


@PROPERTY_SETTINGS
@given(data=st.data())
def test_whatever_is_accepted_has_finite_in_range_fields(
    contract: FeatureContract, data: st.DataObject
) -> None:
    """Arbitrary JSON values in any fields: if validation passes, the result is still sane."""
    base = data.draw(valid_orders(contract))
    mutations = data.draw(st.dictionaries(st.sampled_from(_fields(contract)), json_scalars))
    try:
        parsed = _model(contract).model_validate({**base, **mutations})
    except ValidationError:
        return
    _assert_in_range(contract, parsed)


@PROPERTY_SETTINGS
@given(data=st.data())
def test_an_out_of_range_value_is_rejected_naming_its_field(
    contract: FeatureContract, data: st.DataObject
) -> None:
    base = data.draw(valid_orders(contract))
    name = data.draw(st.sampled_from(_fields(contract)))
    bad = data.draw(out_of_range(contract, name))
    with pytest.raises(ValidationError) as raised:
        _model(contract).model_validate({**base, name: bad})
    named = {error["loc"][0] for error in raised.value.errors()}
    assert named == {name}, raised.value.errors()


@PROPERTY_SETTINGS
@given(data=st.data())
def test_an_unknown_field_is_rejected_naming_it(
    contract: FeatureContract, data: st.DataObject
) -> None:
    base = data.draw(valid_orders(contract))
    extra = data.draw(st.text(min_size=1, max_size=20).filter(lambda k: k not in _fields(contract)))
    with pytest.raises(ValidationError) as raised:
        _model(contract).model_validate({**base, extra: data.draw(json_scalars)})
    assert [e["loc"] for e in raised.value.errors()] == [(extra,)]


@PROPERTY_SETTINGS
@given(data=st.data())
def test_a_missing_required_field_is_rejected_naming_it(
    contract: FeatureContract, data: st.DataObject
) -> None:
    base = data.draw(valid_orders(contract))
    required = [name for name, spec in contract.fields.items() if spec.required]
    missing = data.draw(st.sampled_from(required))
    with pytest.raises(ValidationError) as raised:
        _model(contract).model_validate({k: v for k, v in base.items() if k != missing})
    assert [e["loc"] for e in raised.value.errors()] == [(missing,)]


# --------------------------------------------------------------------------- assembly


positive_minutes = st.floats(min_value=0.5, max_value=240, allow_nan=False)


@st.composite
def assembly_inputs(
    draw: st.DrawFn, contract: FeatureContract
) -> tuple[list[Any], OnlineValues, dict[str, float]]:
    model = _model(contract)
    orders = [model.model_validate(o) for o in draw(st.lists(valid_orders(contract), max_size=25))]
    failed = draw(st.booleans())
    online = {
        name: [None if failed else draw(st.one_of(st.none(), positive_minutes)) for _ in orders]
        for name in contract.entity_features
    }
    defaults = {name: draw(positive_minutes) for name in contract.entity_features}
    return orders, OnlineValues(online, failed=failed), defaults


@ASSEMBLY_SETTINGS
@given(data=st.data())
def test_assembly_shape_order_precedence_and_no_nan(
    contract: FeatureContract, data: st.DataObject
) -> None:
    orders, online, defaults = data.draw(assembly_inputs(contract))
    assembler = FeatureAssembler(contract)
    matrix, codes = assembler.assemble(orders, online, defaults)
    sources = [
        dict(zip(contract.entity_features, (FEATURE_SOURCES[c] for c in row), strict=True))
        for row in codes.tolist()
    ]

    assert matrix.shape == (len(orders), len(contract.feature_names))
    assert matrix.dtype == np.float64
    assert np.isfinite(matrix).all()
    assert len(sources) == len(orders)
    column = {name: i for i, name in enumerate(contract.feature_names)}
    for row, order in enumerate(orders):
        for name in contract.direct_fields:
            spec = contract.fields[name]
            value = getattr(order, name)
            if isinstance(spec, CategoryField):
                levels = spec.levels()
                code = levels.index(value) if value in levels else levels.index(spec.other_value)
                assert matrix[row, column[name]] == code
            else:
                assert matrix[row, column[name]] == float(value)
        assert set(sources[row]) == set(contract.entity_features)
        for name in contract.entity_features:
            requested = getattr(order, name)
            stored = online.values[name][row]
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
def orders_and_entities(
    draw: st.DrawFn, contract: FeatureContract
) -> tuple[list[Any], EntityFeatures]:
    model = _model(contract)
    ids = {
        field: draw(st.lists(entity_ids, min_size=1, max_size=8, unique=True))
        for field in contract.entity_fields
    }
    # Only some entities are in the tables: the rest fall back to defaults, online and offline.
    entities = EntityFeatures(
        tables={
            contract.entity_feature(field): {
                i: draw(positive_minutes) for i in known if draw(st.booleans())
            }
            for field, known in ids.items()
        },
        defaults={name: draw(positive_minutes) for name in contract.entity_features},
        history_end="2026-01-01 00:00:00",
    )
    orders = [
        model.model_validate(
            {
                **{
                    k: v
                    for k, v in draw(valid_orders(contract)).items()
                    if k not in contract.entity_features
                },
                **{field: draw(st.sampled_from(known)) for field, known in ids.items()},
            }
        )
        for _ in range(draw(st.integers(min_value=1, max_value=20)))
    ]
    return orders, entities


@ASSEMBLY_SETTINGS
@given(data=st.data())
def test_serving_assembly_matches_the_training_frame(
    contract: FeatureContract, data: st.DataObject
) -> None:
    """No training/serving skew: the online path builds the rows the model was trained on."""
    orders, entities = data.draw(orders_and_entities(contract))
    assembler = FeatureAssembler(contract)
    ids = assembler.entity_ids(orders)
    online = OnlineValues(
        {
            contract.entity_feature(field): [
                entities.tables[contract.entity_feature(field)].get(i) for i in ids[field]
            ]
            for field in contract.entity_fields
        }
    )
    served, _ = assembler.assemble(orders, online, entities.defaults)
    offline = training_frame(pd.DataFrame([o.model_dump() for o in orders]), contract, entities)
    assert list(offline.columns) == list(contract.feature_names)
    np.testing.assert_array_equal(served, offline.to_numpy(dtype=np.float64))


def test_assembly_of_no_orders_is_an_empty_matrix(contract: FeatureContract) -> None:
    assembler = FeatureAssembler(contract)
    matrix, codes = assembler.assemble(
        [],
        OnlineValues.missing(contract.entity_features, 0, failed=False),
        dict.fromkeys(contract.entity_features, 1.0),
    )
    assert matrix.shape == (0, len(contract.feature_names))
    assert codes.shape == (0, len(contract.entity_features))


# A guard that the strategies above really produce what they claim (cheap sanity).
@settings(max_examples=50, database=None, deadline=None)
@given(data=st.data())
def test_out_of_range_strategy_never_yields_a_valid_value(data: st.DataObject) -> None:
    contract = CONTRACTS[data.draw(st.sampled_from(sorted(CONTRACTS)))]
    name = data.draw(st.sampled_from(_fields(contract)))
    value = data.draw(out_of_range(contract, name))
    spec = contract.fields.get(name)
    if spec is not None and spec.kind == "entity":
        assume(isinstance(value, str))
        assert not ID_PATTERN.fullmatch(value)
    elif spec is not None and spec.kind in ("integer", "boolean"):
        assert type(value) is not int or not (
            (spec.kind == "boolean" and value in (0, 1))
            or (spec.kind == "integer" and spec.minimum <= value <= spec.maximum)
        )
    elif isinstance(spec, CategoryField):
        assert value not in spec.values
        assert spec.on_unseen == "refuse" or len(value) > CATEGORY_TEXT_MAX_LENGTH
    else:
        low = spec.minimum if spec is not None else 0.0
        high = spec.maximum if spec is not None else contract.target.maximum
        inside = low <= value if spec is not None else low < value
        assert not (math.isfinite(value) and inside and value <= high)
