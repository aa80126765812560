"""Valid request bodies from a contract: the example, random orders that are valid and cover
every field, entity ids, bodies files for wrk -- for the default contract and for one with
every kind of field (invalid bodies: ``test_invalid_bodies``; golden orders:
``test_golden_orders``)."""

from __future__ import annotations

import json
import random
from collections import Counter

import numpy as np
import pytest

from models.contract import FeatureContract, default_contract
from models.contract.bodies import (
    OrderGenerator,
    body_lines,
    derived_ids,
    example_order,
)
from models.contract.request import order_problems
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
def test_bodies_files_hold_one_body_per_line(contract: FeatureContract) -> None:
    singles = list(body_lines(contract, count=5, seed=1))
    assert singles == list(body_lines(contract, count=5, seed=1))
    assert all(order_problems(contract, json.loads(line)) == [] for line in singles)
    batches = [json.loads(line) for line in body_lines(contract, count=3, rows=40, seed=2)]
    assert [len(b["orders"]) for b in batches] == [40, 40, 40]
    assert all("\n" not in line for line in singles)
