"""Golden orders from a contract: valid, with ids no store holds, and over every cohort of every
field as the service codes them -- for the default contract and for one with every kind of
field."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from models.cohorts import Cohorts
from models.contract import FeatureContract, default_contract
from models.contract.bodies import override_fields
from models.contract.golden_orders import canary_ids, golden_variations
from models.contract.request import order_problems
from models.features import FeatureAssembler, OnlineValues
from tests.models.contract.mixed_contract import MIXED

CONTRACTS = pytest.mark.parametrize(
    "contract", [default_contract(), MIXED], ids=["default", "mixed"]
)


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
