"""Reading and checking a user's order history: every bad-data case named, with its rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from examples.warehouse_export import order_export
from models.contract import default_contract
from models.training.order_files import fingerprint_files
from models.training.order_history import read_order_history
from models.training.order_report import OrderHistoryError
from models.training.order_schema import order_history_schema


@pytest.fixture(scope="module")
def export() -> pd.DataFrame:
    return order_export(3000, days=30, seed=5)


def _csv(tmp_path: Path, frame: pd.DataFrame, name: str = "orders.csv") -> Path:
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return path


def _error(path: Path, **kwargs: object) -> str:
    with pytest.raises(OrderHistoryError) as caught:
        read_order_history(path, **kwargs)  # type: ignore[arg-type]
    return str(caught.value)


def test_a_valid_csv_reads_in_the_training_names_sorted_by_time(
    tmp_path: Path, export: pd.DataFrame
) -> None:
    shuffled = export.sample(frac=1.0, random_state=1)
    orders, report, source = read_order_history(_csv(tmp_path, shuffled))
    assert list(orders.columns) == [
        "order_ts",
        "restaurant_id",
        "driver_id",
        "distance_km",
        "is_peak_hour",
        "order_value",
        "delivery_time_minutes",
        "_order_key",  # from the file's order_id: one order per id, ties in time by it
    ]
    assert len(orders) == report.rows_read == report.rows_kept == len(export)
    assert orders["order_ts"].is_monotonic_increasing
    assert str(orders["order_ts"].dt.tz) == "UTC"
    # +01:00 offsets become UTC: the first export row is an hour earlier in UTC.
    first = pd.Timestamp(export["created_at"].min()).tz_convert("UTC")
    assert orders["order_ts"].iloc[0] == first
    assert report.extra_columns == ["city"] and report.id_column == "order_id"
    assert source.format == "csv" and len(source.sha256) == 64
    assert orders["delivery_time_minutes"].sum() == pytest.approx(export["delivery_time_min"].sum())


def test_parquet_file_and_directory_read_the_same_orders_as_csv(
    tmp_path: Path, export: pd.DataFrame
) -> None:
    from_csv, _, _ = read_order_history(_csv(tmp_path, export))
    export.to_parquet(tmp_path / "orders.parquet", index=False)
    from_file, _, source = read_order_history(tmp_path / "orders.parquet")
    parts = tmp_path / "parts"
    (parts / "month=1").mkdir(parents=True)
    export.iloc[:1000].to_parquet(parts / "month=1" / "a.parquet", index=False)
    export.iloc[1000:].to_parquet(parts / "b.parquet", index=False)
    from_dir, _, dir_source = read_order_history(parts)
    for frame in (from_file, from_dir):
        pd.testing.assert_frame_equal(
            frame.astype({"restaurant_id": str, "driver_id": str}),
            from_csv.astype({"restaurant_id": str, "driver_id": str}),
        )
    assert source.format == dir_source.format == "parquet"
    assert dir_source.files == ["b.parquet", "month=1/a.parquet"]


def test_the_fingerprint_changes_with_one_byte(tmp_path: Path, export: pd.DataFrame) -> None:
    path = _csv(tmp_path, export)
    before = fingerprint_files([path], path)
    path.write_bytes(path.read_bytes().replace(b"rest-", b"resT-", 1))
    assert fingerprint_files([path], path) != before


def test_missing_and_misspelt_columns_are_all_named(tmp_path: Path, export: pd.DataFrame) -> None:
    renamed = export.rename(columns={"restaurant_id": "restaurantid"}).drop(columns="order_value")
    message = _error(_csv(tmp_path, renamed))
    assert "missing column 'restaurant_id' (found 'restaurantid': misspelt?)" in message
    assert "missing column 'order_value'" in message
    assert "ignored extra columns: restaurantid, city" in message


def test_every_bad_value_is_reported_with_its_column_count_and_rows(
    tmp_path: Path, export: pd.DataFrame
) -> None:
    # Without an order id column: a repeated row is a problem (with one, see below).
    bad = export.drop(columns="order_id").astype(object)
    bad.loc[3, "created_at"] = "yesterday"
    bad.loc[[4, 5], "distance_km"] = "far"
    bad.loc[6, "distance_km"] = 99.0
    bad.loc[7, "order_value"] = float("inf")
    bad.loc[8, "delivery_time_min"] = float("nan")
    bad.loc[9, "delivery_time_min"] = 0.5
    bad.loc[10, "is_peak_hour"] = 2
    bad.loc[11, "driver_id"] = "drv 7; DROP"
    bad.loc[12, "restaurant_id"] = "r" * 65
    bad = pd.concat([bad, bad.iloc[[20, 21]]], ignore_index=True)  # two duplicated orders
    message = _error(_csv(tmp_path, bad))
    n = len(export)
    for expected in (
        "created_at: 1 row(s) not a timestamp (rows 4)",
        "distance_km: 2 row(s) not a number (rows 5, 6)",
        "distance_km: 1 row(s) outside 0.1-50 (rows 7)",
        "order_value: 1 row(s) infinite (rows 8)",
        "delivery_time_min: 1 row(s) empty or NaN (rows 9)",
        "delivery_time_min: 1 row(s) outside 1-300 (rows 10)",
        "is_peak_hour: 1 row(s) outside 0-1 (rows 11)",
        "driver_id: 1 row(s) with characters outside A-Z a-z 0-9 _ . : - (rows 12)",
        "restaurant_id: 1 row(s) longer than 64 characters (rows 13)",
        f"(all columns): 2 row(s) duplicating an earlier row (rows {n + 1}, {n + 2})",
        "pass --drop-invalid",
    ):
        assert expected in message, message


def test_drop_invalid_keeps_the_valid_rows_and_counts_the_rest(
    tmp_path: Path, export: pd.DataFrame
) -> None:
    bad = export.copy()
    bad.loc[[1, 2, 3], "delivery_time_min"] = -1.0
    orders, report, _ = read_order_history(_csv(tmp_path, bad), drop_invalid=True)
    assert report.rows_dropped == 3 and report.rows_kept == len(orders) == len(export) - 3
    assert "dropped 3 invalid row(s)" in report.text()
    assert orders["delivery_time_minutes"].min() >= 1


def test_an_order_exported_twice_is_dropped_and_counted(
    tmp_path: Path, export: pd.DataFrame
) -> None:
    twice = pd.concat([export, export.iloc[[20, 21]]], ignore_index=True)
    orders, report, _ = read_order_history(_csv(tmp_path, twice))
    assert report.duplicates_dropped == 2 and len(orders) == report.rows_kept == len(export)
    assert "dropped 2 row(s) repeating an earlier row with the same order_id" in report.text()
    # Two orders with equal values but their own ids are two orders.
    lookalike = pd.concat([export, export.iloc[[30]].assign(order_id="ord-new")])
    orders, report, _ = read_order_history(_csv(tmp_path, lookalike, "lookalike.csv"))
    assert len(orders) == len(export) + 1 and not report.problems


def test_one_order_id_with_different_values_is_refused_naming_the_ids(
    tmp_path: Path, export: pd.DataFrame
) -> None:
    changed = export.iloc[[40, 41]].assign(delivery_time_min=lambda f: f["delivery_time_min"] + 5)
    conflicting = pd.concat([export, changed, export.iloc[[40]]], ignore_index=True)
    path = _csv(tmp_path, conflicting)
    message = _error(path)
    ids = ", ".join(repr(i) for i in export["order_id"].iloc[[40, 41]])
    n = len(export)
    assert (
        f"order_id: 5 row(s) sharing their id with a row of other values: 2 id(s) {ids} "
        f"(rows 41, 42, {n + 1}, {n + 2}, {n + 3})"
    ) in message, message
    # --drop-invalid keeps no version of such an order: which one is right is unknown.
    orders, report, _ = read_order_history(path, drop_invalid=True)
    assert report.rows_dropped == 5 and len(orders) == n - 2


def test_a_label_export_is_checked_by_its_prediction_id(
    tmp_path: Path, export: pd.DataFrame
) -> None:
    labels = export.rename(columns={"order_id": "prediction_id"})
    twice = pd.concat([labels, labels.iloc[:3]], ignore_index=True)
    twice.to_parquet(tmp_path / "labels.parquet", index=False)
    orders, report, _ = read_order_history(tmp_path / "labels.parquet")
    assert report.id_column == "prediction_id" and report.duplicates_dropped == 3
    assert len(orders) == len(export)
    moved = labels.iloc[[7]].assign(distance_km=lambda f: f["distance_km"] + 1.0)
    pd.concat([labels, moved]).to_parquet(tmp_path / "bad.parquet", index=False)
    assert "prediction_id: 2 row(s) sharing their id" in _error(tmp_path / "bad.parquet")


@pytest.mark.parametrize(
    ("rows", "days", "expected"),
    [(500, 30, "too few valid rows: 500 (need at least 1,000)"), (3000, 5, "too few days")],
)
def test_too_little_data_is_refused(tmp_path: Path, rows: int, days: int, expected: str) -> None:
    message = _error(_csv(tmp_path, order_export(rows, days=days, seed=1)))
    assert expected in message


def test_drop_invalid_cannot_fix_too_few_rows(tmp_path: Path, export: pd.DataFrame) -> None:
    bad = export.copy()
    bad.loc[bad.index[:2500], "distance_km"] = np.nan
    message = _error(_csv(tmp_path, bad), drop_invalid=True)
    assert "dropped 2,500 invalid row(s)" in message and "too few valid rows: 500" in message


def test_unknown_formats_and_paths_are_named(tmp_path: Path) -> None:
    (tmp_path / "orders.xlsx").write_bytes(b"PK")
    assert "unknown format" in _error(tmp_path / "orders.xlsx")
    assert "no such file or directory" in _error(tmp_path / "missing.csv")
    (tmp_path / "empty").mkdir()
    assert "holds no .parquet files" in _error(tmp_path / "empty")
    (tmp_path / "broken.parquet").write_bytes(b"not parquet at all")
    assert "cannot read as parquet" in _error(tmp_path / "broken.parquet")


def test_the_schema_documents_every_column() -> None:
    assert list(order_history_schema(default_contract())) == [
        "created_at",
        "restaurant_id",
        "driver_id",
        "distance_km",
        "is_peak_hour",
        "order_value",
        "delivery_time_min",
    ]


def test_odd_values_are_reported_not_raised(tmp_path: Path, export: pd.DataFrame) -> None:
    odd = export.astype(object)
    odd.loc[3, "is_peak_hour"] = float("inf")
    odd.loc[4, "restaurant_id"] = "NA"  # a valid id, not a missing value
    odd.loc[5, "driver_id"] = "null"
    message = _error(_csv(tmp_path, odd))
    assert "is_peak_hour: 1 row(s) infinite (rows 4)" in message
    assert "restaurant_id" not in message and "driver_id" not in message
    orders, report, _ = read_order_history(_csv(tmp_path, odd), drop_invalid=True)
    assert report.rows_dropped == 1 and "NA" in set(orders["restaurant_id"].astype(str))


def test_a_column_given_twice_is_refused(tmp_path: Path, export: pd.DataFrame) -> None:
    path = tmp_path / "twice.csv"
    export.to_csv(path, index=False)
    lines = path.read_text().splitlines()
    path.write_text("\n".join(f"{line},{line.split(',')[5]}" for line in lines) + "\n")
    assert "column 'distance_km' appears 2 times" in _error(path)


def test_parquet_directories_with_disagreeing_files(tmp_path: Path, export: pd.DataFrame) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    mixed = tmp_path / "mixed"
    mixed.mkdir()
    first = export.iloc[:1500].copy()
    first["restaurant_id"] = first["restaurant_id"].astype("category")  # dictionary-encoded
    first["created_at"] = pd.to_datetime(first["created_at"], utc=True).dt.tz_localize(None)
    first.to_parquet(mixed / "a.parquet", index=False)
    second = export.iloc[1500:].copy()
    second["is_peak_hour"] = second["is_peak_hour"].astype(bool)
    second["distance_km"] = second["distance_km"].astype(str)  # numbers written as text
    second.to_parquet(mixed / "b.parquet", index=False)
    orders, report, _ = read_order_history(mixed)
    assert len(orders) == len(export) and not report.problems
    assert orders["distance_km"].dtype == "float64"

    export.iloc[:1500].drop(columns="order_value").to_parquet(mixed / "c.parquet", index=False)
    assert "column 'order_value' missing from 1 file(s): c.parquet" in _error(mixed)

    lists = tmp_path / "lists.parquet"
    table = pa.Table.from_pandas(export.drop(columns="distance_km"), preserve_index=False)
    table = table.append_column("distance_km", pa.array([[1.0]] * len(export)))
    pq.write_table(table, lists)
    assert "column 'distance_km' holds list<element: double>" in _error(lists)

    raw = pa.Table.from_pandas(export.drop(columns="driver_id"), preserve_index=False)
    raw = raw.append_column("driver_id", pa.array([b"\xff\xfe"] * len(export), pa.binary()))
    pq.write_table(raw, tmp_path / "bytes.parquet")
    assert "column 'driver_id' holds binary" in _error(tmp_path / "bytes.parquet")
