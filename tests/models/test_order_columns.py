"""Columnar orders (the v2 protocol's) assemble into the same model input and source codes as
the same orders as rows, for the default contract and one with every kind of field."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from models.contract import FeatureContract, default_contract
from models.contract.request import order_model
from models.features import FeatureAssembler, OnlineValues, OrderColumns
from tests.models.contract.mixed_contract import MIXED


def _orders(contract: FeatureContract) -> list[dict[str, Any]]:
    """The contract's example orders, varied: an unseen open category, overrides on some rows."""
    orders = [dict(o) for o in contract.example_orders()] * 3
    first_feature = contract.entity_features[0]
    orders[1] = {**orders[1], first_feature: 12.5}
    if "vehicle" in contract.fields:  # the mixed contract's open category
        orders[2] = {**orders[2], "vehicle": "scooter"}
    return orders


def _columns(contract: FeatureContract, rows: list[Any]) -> OrderColumns:
    names = [*contract.fields, *contract.entity_features]
    columns: dict[str, Any] = {}
    for name in names:
        values = [getattr(row, name) for row in rows]
        spec = contract.fields.get(name)
        if spec is None:  # an override: NaN where not given
            columns[name] = np.array([np.nan if v is None else v for v in values])
        elif spec.kind in ("number", "integer", "boolean"):
            columns[name] = np.array(values)
        else:
            columns[name] = values
    return OrderColumns(len(rows), columns)


@pytest.mark.parametrize("contract", [default_contract(), MIXED], ids=["default", "mixed"])
def test_columns_assemble_like_rows(contract: FeatureContract) -> None:
    model = order_model(contract)
    rows = [model.model_validate(o) for o in _orders(contract)]
    assembler = FeatureAssembler(contract)
    found: list[float | None] = [20.0, None, 30.0] * (len(rows) // 3)
    online = OnlineValues({f: found for f in contract.entity_features})
    defaults = dict.fromkeys(contract.entity_features, 25.0)
    matrix, codes = assembler.assemble(rows, online, defaults)
    columns = _columns(contract, rows)
    column_matrix, column_codes = assembler.assemble_columns(columns, online, defaults)
    np.testing.assert_array_equal(column_matrix, matrix)
    np.testing.assert_array_equal(column_codes, codes)
    assert assembler.column_entity_ids(columns) == assembler.entity_ids(rows)
    # Back to rows (for a challenger with another contract): the same input again.
    again, _ = assembler.assemble(assembler.rows_of(columns), online, defaults)
    np.testing.assert_array_equal(again, matrix)


def test_an_optional_field_left_out_takes_its_default() -> None:
    model = order_model(MIXED)
    orders = [{k: v for k, v in o.items() if k != "rating"} for o in _orders(MIXED)]
    rows = [model.model_validate(o) for o in orders]  # rating left out: its default
    columns = _columns(MIXED, rows)
    without = OrderColumns(
        columns.rows, {k: v for k, v in columns.columns.items() if k != "rating"}
    )
    online = OnlineValues.missing(MIXED.entity_features, len(rows), failed=False)
    defaults = dict.fromkeys(MIXED.entity_features, 25.0)
    assembler = FeatureAssembler(MIXED)
    np.testing.assert_array_equal(
        assembler.assemble_columns(without, online, defaults)[0],
        assembler.assemble(rows, online, defaults)[0],
    )
