"""Invalid bodies from a contract: every break is refused naming the field it breaks, and the
whole-body variants are built from valid orders -- for the default contract and for one with
every kind of field."""

from __future__ import annotations

import json
import random

import pytest

from models.contract import FeatureContract, default_contract
from models.contract.bodies import OrderGenerator, example_order, request_fields
from models.contract.invalid_bodies import (
    MAX_BATCH_ROWS,
    invalid_batch_variants,
    invalid_predict_variants,
    order_breaks,
)
from models.contract.request import order_problems
from tests.models.contract.mixed_contract import MIXED

CONTRACTS = pytest.mark.parametrize(
    "contract", [default_contract(), MIXED], ids=["default", "mixed"]
)


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
