"""The order-history check driven by a contract: every field kind read, checked and reported."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from models.contract import CategoryField, parse_contract
from models.features import ORDER_TS, TARGET, FeatureAssembler, OnlineValues, category_codes
from models.training.dataset import ORDER_KEY, order_keys
from models.training.order_history import read_order_history
from models.training.order_report import MAPPED_TO_OTHER, OrderHistoryError, ValidationReport
from models.training.order_schema import order_history_schema
from tests.models.training.contract_orders import CONTRACT_YAML, rich_contract, rich_orders


def _mapped_to_other(report: ValidationReport) -> dict[str, int]:
    """Per category field with ``on_unseen: other``: kept rows whose value was mapped."""
    return {n.column: n.rows for n in report.notes if n.what.startswith(MAPPED_TO_OTHER)}


@pytest.fixture(scope="module")
def orders() -> pd.DataFrame:
    return rich_orders(3000, days=20, seed=3)


def _as_read(orders: pd.DataFrame) -> pd.DataFrame:
    """``orders`` in the order the reader returns them: by time, ties by the order id's key."""
    keys = order_keys(orders, orders["order_id"])
    placed = pd.to_datetime(orders["placed_at"], utc=True)
    order = pd.DataFrame({"t": placed, "k": keys}).sort_values(["t", "k"], kind="stable").index
    return orders.loc[order].reset_index(drop=True)


def _csv(tmp_path: Path, frame: pd.DataFrame, name: str = "orders.csv") -> Path:
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return path


def _parquet(tmp_path: Path, frame: pd.DataFrame, name: str = "orders.parquet") -> Path:
    path = tmp_path / name
    frame.to_parquet(path, index=False)
    return path


def _error(path: Path, **kwargs: object) -> str:
    with pytest.raises(OrderHistoryError) as caught:
        read_order_history(path, rich_contract(), **kwargs)  # type: ignore[arg-type]
    return str(caught.value)


def test_the_schema_is_the_contracts_columns_in_order() -> None:
    schema = order_history_schema(rich_contract())
    assert list(schema) == [
        "placed_at",
        *rich_contract().fields,
        "minutes",
    ]
    assert schema["weather"] == "one of: clear, rain, storm"
    assert "any other value counts as 'other'" in schema["vehicle"]
    assert schema["items"] == "whole number, 1-30"
    assert schema["festival"] == "0 or 1 (true/false accepted)"
    assert "optional (absent or empty: 15.0)" in schema["prep_estimate_min"]


def test_a_valid_file_reads_every_kind_in_the_training_names(
    tmp_path: Path, orders: pd.DataFrame
) -> None:
    frame, report, _ = read_order_history(_csv(tmp_path, orders), rich_contract())
    assert list(frame.columns) == [ORDER_TS, *rich_contract().fields, TARGET, ORDER_KEY]
    assert frame[ORDER_TS].is_monotonic_increasing and str(frame[ORDER_TS].dt.tz) == "UTC"
    assert frame["items"].dtype == "int64" and frame["festival"].dtype == "int64"
    assert frame["distance_km"].dtype == "float64"
    for name in ("weather", "vehicle", "city_tier"):
        levels = [str(v) for v in rich_contract().category_levels(name)]
        assert list(frame[name].cat.categories) == levels
    assert report.extra_columns == [] and report.id_column == "order_id"
    # The contract lists no "van": those rows are mapped to "other", and the report says so.
    vans = int((orders["vehicle"] == "van").sum())
    assert vans > 0
    assert (frame["vehicle"] == "other").sum() == vans
    assert _mapped_to_other(report) == {"vehicle": vans}
    assert f"vehicle: {vans:,} row(s) with a value the contract does not list" in report.text()
    assert "'van'" in report.text()
    # "other" itself (as the label export writes a mapped value back) is a level, not unseen.
    exported = orders.replace({"vehicle": {"van": "other"}})
    again, report, _ = read_order_history(_csv(tmp_path, exported, "labels.csv"), rich_contract())
    assert _mapped_to_other(report) == {} and (again["vehicle"] == "other").sum() == vans


def test_csv_and_parquet_read_the_same_orders(tmp_path: Path, orders: pd.DataFrame) -> None:
    from_csv, _, _ = read_order_history(_csv(tmp_path, orders), rich_contract())
    from_parquet, _, _ = read_order_history(_parquet(tmp_path, orders), rich_contract())
    pd.testing.assert_frame_equal(from_csv, from_parquet, check_categorical=False)


@pytest.mark.parametrize(
    "written",
    [
        lambda s: s.astype("int64"),
        lambda s: s.astype(str),
        lambda s: s.astype("float64"),
        lambda s: s.astype(str) + ".0",
    ],
    ids=["int", "text", "float", "text-float"],
)
def test_an_integer_valued_category_matches_however_the_file_holds_it(
    tmp_path: Path, orders: pd.DataFrame, written: object
) -> None:
    variant = orders.copy()
    variant["city_tier"] = written(orders["city_tier"])  # type: ignore[operator]
    frame, report, _ = read_order_history(_parquet(tmp_path, variant), rich_contract())
    assert not report.problems
    assert frame["city_tier"].astype(int).tolist() == _as_read(orders)["city_tier"].tolist()
    # The training code maps them to the codes the API's assembler gives the same ints.
    spec = rich_contract().fields["city_tier"]
    assert isinstance(spec, CategoryField)
    trained = category_codes(frame["city_tier"], spec)
    assembler = FeatureAssembler(rich_contract())
    column = rich_contract().feature_names.index("city_tier")
    requests = [_request(city_tier=int(v)) for v in orders["city_tier"][:50]]
    served, _ = assembler.assemble(
        requests,
        OnlineValues.missing(rich_contract().entity_features, len(requests), failed=False),
        dict.fromkeys(rich_contract().entity_features, 30.0),
    )
    np.testing.assert_array_equal(served[:, column], trained[:50])


def _request(**changes: object) -> SimpleNamespace:
    """One validated order as the API hands it to the assembler (every field, no overrides)."""
    contract = rich_contract()
    values = {**contract.example_order(), **changes}
    overrides = dict.fromkeys(contract.entity_features)
    return SimpleNamespace(**values, **overrides)


def test_every_kind_of_bad_value_is_reported_at_once(tmp_path: Path, orders: pd.DataFrame) -> None:
    bad = orders.astype(object)
    bad.loc[1, "placed_at"] = "soon"
    bad.loc[2, "store_id"] = "store 7"
    bad.loc[3, "distance_km"] = 41.0
    bad.loc[4, "items"] = 2.5
    bad.loc[5, "items"] = "many"
    bad.loc[6, "festival"] = 2
    bad.loc[7, "weather"] = "hail"
    bad.loc[8, "weather"] = "sleet"
    bad.loc[9, "city_tier"] = 4
    bad.loc[10, "minutes"] = 0.2
    bad.loc[11, "weather"] = None
    message = _error(_csv(tmp_path, bad))
    allowed = "(clear, rain, storm)"
    for expected in (
        "placed_at: 1 row(s) not a timestamp (rows 2)",
        "store_id: 1 row(s) with characters outside A-Z a-z 0-9 _ . : - (rows 3)",
        "distance_km: 1 row(s) outside 0.1-40 (rows 4)",
        "items: 1 row(s) not a whole number (rows 5)",
        "items: 1 row(s) not a number (rows 6)",
        "festival: 1 row(s) outside 0-1 (rows 7)",
        f"weather: 2 row(s) not one of the contract's values {allowed}: found 'hail', 'sleet'"
        " (rows 8, 9)",
        "city_tier: 1 row(s) not one of the contract's values (1, 2, 3): found '4' (rows 10)",
        "minutes: 1 row(s) outside 1-300 (rows 11)",
        "weather: 1 row(s) empty (rows 12)",
        "pass --drop-invalid",
    ):
        assert expected in message, message
    frame, report, _ = read_order_history(_csv(tmp_path, bad), rich_contract(), drop_invalid=True)
    assert report.rows_dropped == 11 and len(frame) == len(orders) - 11
    assert set(frame["weather"].astype(str)) == {"clear", "rain", "storm"}


def test_a_boolean_takes_true_false_and_0_1(tmp_path: Path, orders: pd.DataFrame) -> None:
    worded = orders.copy()
    worded["festival"] = np.where(orders["festival"] == 1, "true", "False")
    frame, report, _ = read_order_history(_csv(tmp_path, worded), rich_contract())
    assert not report.problems
    assert frame["festival"].tolist() == _as_read(orders)["festival"].tolist()
    flags = orders.copy()
    flags["festival"] = orders["festival"].astype(bool)
    frame, _, _ = read_order_history(_parquet(tmp_path, flags), rich_contract())
    assert frame["festival"].tolist() == _as_read(orders)["festival"].tolist()


def test_a_missing_declared_column_is_refused_by_name(tmp_path: Path, orders: pd.DataFrame) -> None:
    renamed = orders.rename(columns={"weather": "wether"}).drop(columns="items")
    message = _error(_csv(tmp_path, renamed))
    assert "missing column 'weather' (found 'wether': misspelt?)" in message
    assert "missing column 'items': whole number, 1-30" in message
    assert "rows read" not in message  # nothing was read


def test_an_absent_optional_column_takes_its_default(tmp_path: Path, orders: pd.DataFrame) -> None:
    without = orders.drop(columns="prep_estimate_min")
    frame, report, _ = read_order_history(_csv(tmp_path, without), rich_contract())
    assert (frame["prep_estimate_min"] == 15.0).all()
    assert report.absent_optional == {"prep_estimate_min": 15.0}
    assert "optional column 'prep_estimate_min' absent: every row takes its default 15.0" in (
        report.text()
    )


def test_empty_cells_of_an_optional_field_take_its_default(
    tmp_path: Path, orders: pd.DataFrame
) -> None:
    contract = parse_contract(
        CONTRACT_YAML.replace(
            "    values: [clear, rain, storm]\n    example: clear",
            "    values: [clear, rain, storm]\n    example: clear\n    required: false\n"
            "    default: clear",
        )
    )
    gaps = orders.copy()
    gaps.loc[[3, 4], "prep_estimate_min"] = np.nan
    gaps.loc[[5, 6, 7], "weather"] = None
    frame, report, _ = read_order_history(_csv(tmp_path, gaps), contract)
    assert not report.problems
    filled = gaps.fillna({"prep_estimate_min": 15.0, "weather": "clear"})
    assert (frame["prep_estimate_min"] == 15.0).sum() == (filled["prep_estimate_min"] == 15).sum()
    assert (frame["weather"] == "clear").sum() == (filled["weather"] == "clear").sum()
    assert "prep_estimate_min: 2 row(s) empty, given the default 15.0" in report.text()
    assert "weather: 3 row(s) empty, given the default 'clear'" in report.text()


def test_unseen_values_of_a_refusing_category_can_be_dropped(
    tmp_path: Path, orders: pd.DataFrame
) -> None:
    odd = orders.copy()
    odd.loc[[10, 20, 30], "weather"] = "fog"
    message = _error(_csv(tmp_path, odd))
    assert "weather: 3 row(s) not one of the contract's values (clear, rain, storm)" in message
    frame, report, _ = read_order_history(_csv(tmp_path, odd), rich_contract(), drop_invalid=True)
    assert report.rows_dropped == 3 and "fog" not in set(frame["weather"].astype(str))


def test_a_parquet_directory_whose_files_type_a_category_differently(
    tmp_path: Path, orders: pd.DataFrame
) -> None:
    parts = tmp_path / "parts"
    parts.mkdir()
    first, second = orders.iloc[:1500].copy(), orders.iloc[1500:].copy()
    first["city_tier"] = first["city_tier"].astype("int64")
    second["city_tier"] = second["city_tier"].astype(str)
    second["weather"] = second["weather"].astype("category")  # dictionary-encoded
    first.to_parquet(parts / "a.parquet", index=False)
    second.to_parquet(parts / "b.parquet", index=False)
    frame, report, _ = read_order_history(parts, rich_contract())
    assert len(frame) == len(orders) and not report.problems
    assert frame["city_tier"].astype(int).sum() == orders["city_tier"].sum()


def test_a_field_with_the_internal_name_of_the_order_time_is_refused(
    tmp_path: Path, orders: pd.DataFrame
) -> None:
    contract = parse_contract(CONTRACT_YAML.replace("  items:", "  order_ts:"))
    renamed = orders.rename(columns={"items": "order_ts"})
    with pytest.raises(OrderHistoryError, match="field 'order_ts' has the training code's"):
        read_order_history(_csv(tmp_path, renamed), contract)
