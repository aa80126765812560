"""Request bodies from a contract: the example, random orders that are valid and cover every
field, invalid variants that each break the field they name, golden variations over every
cohort, bodies files for wrk -- for the default contract and for one with every kind of field."""

from __future__ import annotations

import json
import random
from collections import Counter
from types import SimpleNamespace

import numpy as np
import pytest

from models.cohorts import Cohorts
from models.contract import FeatureContract, default_contract
from models.contract.bodies import (
    MAX_BATCH_ROWS,
    OrderGenerator,
    body_lines,
    canary_ids,
    derived_ids,
    example_order,
    golden_variations,
    invalid_batch_variants,
    invalid_predict_variants,
    order_breaks,
    override_fields,
    request_fields,
)
from models.contract.request import order_problems
from models.features import FeatureAssembler, OnlineValues
from tests.models.contract.mixed_contract import MIXED

CONTRACTS = pytest.mark.parametrize(
    "contract", [default_contract(), MIXED], ids=["default", "mixed"]
)


@CONTRACTS
def test_the_example_order_is_valid_and_holds_every_field(contract: FeatureContract) -> None:
    order = example_order(contract)
    assert list(order) == list(contract.fields)
    assert order_problems(contract, order) == []


def test_the_default_example_is_the_apis() -> None:
    # The OpenAPI example and README body of the default contract, unchanged.
    assert json.dumps(example_order(default_contract())) == json.dumps(
        default_contract().example_order()
    )


@CONTRACTS
def test_random_orders_are_valid_reproducible_and_cover_every_field(
    contract: FeatureContract,
) -> None:
    generator = OrderGenerator(contract)
    orders = generator.orders(random.Random(7), 4000)
    assert orders[:50] == generator.orders(random.Random(7), 50)  # seeded
    assert [order_problems(contract, o) for o in orders] == [[]] * len(orders)
    for name, spec in contract.fields.items():
        sent = [o[name] for o in orders if name in o]
        if spec.kind in ("number", "integer"):
            # Around the example mostly, but the whole range, both bounds included.
            assert min(sent) == spec.minimum and max(sent) == spec.maximum, name
            if spec.kind == "number" or spec.maximum - spec.minimum > 20:
                assert np.median(sent) == pytest.approx(spec.example, rel=0.5), name
            else:  # a small integer range is drawn evenly
                assert set(sent) == set(range(int(spec.minimum), int(spec.maximum) + 1))
        elif spec.kind == "boolean":
            assert {bool(v) for v in sent} == {False, True}
            assert {type(v) for v in sent} == {bool, int}  # 0/1 as a training file has it
        elif spec.kind == "category":
            assert set(spec.values) <= set(sent), name
        if not spec.required:
            assert 0.1 < 1 - len(sent) / len(orders) < 0.3, name  # left out sometimes
    for field in contract.entity_fields:
        ids = Counter(o[field] for o in orders)
        known = set(generator.known_ids[field])  # type: ignore[index]
        unknown = sum(n for i, n in ids.items() if i not in known)
        assert 0.07 < unknown / len(orders) < 0.13, field
        assert len(known & set(ids)) > 50
        overrides = sum(contract.entity_feature(field) in o for o in orders)
        assert 0.03 < overrides / len(orders) < 0.07


def test_known_ids_are_drawn_from_the_ones_given() -> None:
    contract = default_contract()
    given = {name: [f"{name}-{i}" for i in range(3)] for name in contract.entity_fields}
    generator = OrderGenerator(contract, given, unknown_share=0.0)
    for order in generator.orders(random.Random(1), 200):
        for name in contract.entity_fields:
            assert order[name] in given[name]


def test_ids_derived_from_an_example_keep_its_shape() -> None:
    assert derived_ids("r_0042", 3) == ["r_0000", "r_0001", "r_0002"]
    assert derived_ids("d7", 12)[-1] == "d11"
    assert derived_ids("kitchen", 2) == ["kitchen_0", "kitchen_1"]


@CONTRACTS
def test_every_break_is_refused_naming_its_field(contract: FeatureContract) -> None:
    base = example_order(contract)
    breaks = order_breaks(contract)
    for brk in breaks:
        problems = order_problems(contract, brk.broken(base))
        assert problems and all(p.startswith(f"{brk.field}:") for p in problems), brk.kind
    broken = {brk.field for brk in breaks}
    assert set(request_fields(contract)) <= broken  # every field and override can be broken
    required = [n for n, s in contract.fields.items() if s.required]
    assert {b.field for b in breaks if b.kind.startswith("missing ")} == set(required)


def test_a_category_mapping_unseen_values_to_other_has_no_unseen_break() -> None:
    kinds = {brk.kind for brk in order_breaks(MIXED)}
    assert "weather unseen value" in kinds
    assert "vehicle unseen value" not in kinds  # "other" takes it: a valid order
    assert order_problems(MIXED, {**example_order(MIXED), "vehicle": "scooter"}) == []


@CONTRACTS
def test_invalid_bodies_are_built_from_valid_orders(contract: FeatureContract) -> None:
    rng = random.Random(3)
    orders = OrderGenerator(contract).orders(rng, 30)
    single = {v.kind: v for v in invalid_predict_variants(contract)}
    assert single["empty body"].body(orders, rng) == b""
    with pytest.raises(ValueError):
        json.loads(single["truncated JSON"].body(orders, rng))
    assert single["not JSON"].content_type == "text/plain"
    for variant in single.values():
        if variant.field is not None and variant.field_named:
            body = json.loads(variant.body(orders, rng))
            assert order_problems(contract, body), variant.kind
    batch = {v.kind: v for v in invalid_batch_variants(contract)}
    assert len(json.loads(batch["too many orders"].body(orders, rng))["orders"]) == (
        MAX_BATCH_ROWS + 1
    )
    for _ in range(20):
        mixed = json.loads(batch["one bad order in the batch"].body(orders, rng))["orders"]
        assert [bool(order_problems(contract, o)) for o in mixed] == [False] * 20 + [True]


@CONTRACTS
def test_golden_variations_cover_every_cohort_and_are_valid(contract: FeatureContract) -> None:
    cases = golden_variations(contract)
    names = [name for name, _ in cases]
    assert names[0] == "example" and len(set(names)) == len(names)
    orders = [order for _, order in cases]
    for order in orders:
        assert order_problems(contract, order) == []
        for field, unknown in canary_ids(contract).items():
            assert order[field] == unknown
    # Each golden order's cohorts, as the service codes them: every cohort of every field.
    fields = [*contract.fields, *override_fields(contract)]
    rows = [
        SimpleNamespace(
            **{f: o.get(f, getattr(contract.fields.get(f), "default", None)) for f in fields}
        )
        for o in orders
    ]
    features, _ = FeatureAssembler(contract).assemble(
        rows,
        OnlineValues.missing(contract.entity_features, len(rows), failed=False),
        dict.fromkeys(contract.entity_features, 30.0),
    )
    cohorts = Cohorts(contract)
    codes = cohorts.codes(features, np.zeros(len(rows), dtype=bool))
    hit = {cohorts.names[c] for c in codes.ravel()}
    expected = {n for d, ns in contract.cohort_dimensions.items() if d != "entity" for n in ns}
    assert expected <= hit


@CONTRACTS
def test_bodies_files_hold_one_body_per_line(contract: FeatureContract) -> None:
    singles = list(body_lines(contract, count=5, seed=1))
    assert singles == list(body_lines(contract, count=5, seed=1))
    assert all(order_problems(contract, json.loads(line)) == [] for line in singles)
    batches = [json.loads(line) for line in body_lines(contract, count=3, rows=40, seed=2)]
    assert [len(b["orders"]) for b in batches] == [40, 40, 40]
    assert all("\n" not in line for line in singles)
