"""examples/rich_orders.py: deterministic, and its extra columns carry most of the signal."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingRegressor

from examples.rich_orders import (
    DEFAULT_FIELDS,
    EXTRA_COLUMNS,
    RARE_WEATHER,
    main,
    rich_orders,
)

TARGET = "delivery_time_min"


def test_the_same_seed_gives_the_same_orders_and_another_seed_others() -> None:
    first = rich_orders(3_000, days=30, seed=4)
    pd.testing.assert_frame_equal(first, rich_orders(3_000, days=30, seed=4))
    other = rich_orders(3_000, days=30, seed=5)
    assert not first[TARGET].equals(other[TARGET])


def test_the_file_has_the_default_extra_and_export_columns_sorted_by_time() -> None:
    orders = rich_orders(5_000, days=30, seed=1)
    assert set(orders.columns) == {
        *DEFAULT_FIELDS,
        *EXTRA_COLUMNS,
        "order_id",
        "created_at",
        "delivered_at",
        TARGET,
    }
    assert orders["created_at"].is_monotonic_increasing
    assert orders["order_id"].is_unique
    assert (pd.to_datetime(orders["delivered_at"]) > pd.to_datetime(orders["created_at"])).all()
    assert orders[TARGET].between(1, 300).all()
    assert set(orders["is_peak_hour"]) == set(orders["festival"]) == {0, 1}


def test_the_rare_weather_values_are_a_small_tail() -> None:
    orders = rich_orders(60_000, seed=7)
    shares = orders["weather"].value_counts(normalize=True)
    for value in RARE_WEATHER:
        assert 0 < shares[value] < 0.001, value
    assert shares.drop(list(RARE_WEATHER)).min() > 0.05


def _features(part: pd.DataFrame, train: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    """Plain features: ids as their mean target in ``train``, text as pandas categories."""
    out = pd.DataFrame(index=part.index)
    for name in columns:
        if name.endswith("_id"):
            means = train.groupby(name)[TARGET].mean()
            out[name] = part[name].map(means).fillna(train[TARGET].mean())
        elif part[name].dtype.kind in "biuf":
            out[name] = part[name]
        else:
            out[name] = pd.Categorical(part[name], categories=sorted(train[name].unique()))
    return out


def test_a_model_on_the_extra_columns_is_far_better_than_one_on_the_five_fields() -> None:
    orders = rich_orders(30_000, days=60, seed=7)
    train, test = orders.iloc[:24_000], orders.iloc[24_000:]  # time split: test is the newest
    mae = {}
    for name, columns in (("five", DEFAULT_FIELDS), ("all", DEFAULT_FIELDS + EXTRA_COLUMNS)):
        model = HistGradientBoostingRegressor(random_state=0, categorical_features="from_dtype")
        model.fit(_features(train, train, columns), train[TARGET])
        predicted = model.predict(_features(test, train, columns))
        mae[name] = float(np.mean(np.abs(predicted - test[TARGET])))
    # Measured: 2.25 vs 7.23 minutes (a ratio of 0.31); the extra columns carry most of the signal.
    assert mae["all"] < 0.5 * mae["five"], mae


def test_the_cli_writes_csv_and_parquet(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("orders.csv", "orders.parquet"):
        out = tmp_path / name
        assert main(["--rows", "500", "--days", "20", "--seed", "3", "--out", str(out)]) == 0
        read = pd.read_parquet(out) if name.endswith(".parquet") else pd.read_csv(out)
        expected = rich_orders(500, days=20, seed=3)
        assert list(read.columns) == list(expected.columns)
        assert read[TARGET].tolist() == expected[TARGET].tolist()
    assert "wrote 500 orders" in capsys.readouterr().out
