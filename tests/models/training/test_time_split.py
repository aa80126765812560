"""Time-ordered splits of a real order history: nothing from the future leaks into the past."""

from __future__ import annotations

import itertools

import pandas as pd
import pytest

from examples.warehouse_export import order_export
from models.features import ORDER_TS, TARGET
from models.training.dataset import SPLIT_NAMES, TimeSplit, split_by_time


def _orders(rows: int, seed: int = 3, days: int = 40) -> pd.DataFrame:
    names = {"created_at": ORDER_TS, "delivery_time_min": TARGET}
    frame = order_export(rows, days=days, seed=seed).rename(columns=names)
    frame[ORDER_TS] = pd.to_datetime(frame[ORDER_TS], utc=True)
    return frame.sort_values(ORDER_TS, kind="stable").reset_index(drop=True)


def _assert_time_ordered(parts: dict[str, pd.DataFrame]) -> None:
    for older, newer in itertools.pairwise(SPLIT_NAMES):
        # Strictly: an order sharing a timestamp with the next part would be in it.
        assert parts[older]["order_ts"].max() < parts[newer]["order_ts"].min(), (older, newer)


def test_parts_follow_time_and_keep_every_order() -> None:
    orders = _orders(5000)
    parts = split_by_time(orders, TimeSplit())
    _assert_time_ordered(parts)
    assert sum(len(p) for p in parts.values()) == len(orders)
    assert len(parts["holdout"]) == pytest.approx(0.15 * len(orders), abs=5)
    assert len(parts["history"]) == pytest.approx(0.4 * len(orders), abs=5)


def test_orders_sharing_a_timestamp_stay_in_one_part() -> None:
    orders = _orders(4000)
    # Every order of a whole hour placed at the same second: cuts must not split them.
    orders["order_ts"] = orders["order_ts"].dt.floor("h")
    parts = split_by_time(orders, TimeSplit())
    _assert_time_ordered(parts)
    assert sum(len(p) for p in parts.values()) == len(orders)


def test_with_labels_the_holdout_is_the_newest_labelled_orders() -> None:
    history = _orders(5000)
    labels = _orders(800, seed=9, days=20)
    labels["order_ts"] += history["order_ts"].max() - labels["order_ts"].min() - pd.Timedelta("1D")
    parts = split_by_time(history, TimeSplit(), labels=labels)
    _assert_time_ordered(parts)
    holdout = parts["holdout"]
    assert len(holdout) == pytest.approx(0.15 * len(labels), abs=5)
    newest = labels.nlargest(len(holdout), "order_ts")
    assert set(holdout["order_ts"]) == set(newest["order_ts"])
    # Every order older than the holdout (history and older labels) is in an earlier part.
    earlier = pd.concat([parts[name] for name in SPLIT_NAMES[:3]])
    assert len(earlier) == len(history) + len(labels) - len(holdout)


def test_too_small_parts_and_bad_shares_are_refused() -> None:
    with pytest.raises(ValueError, match="too few orders for the time splits"):
        split_by_time(_orders(300), TimeSplit())
    with pytest.raises(ValueError, match="sum to 1"):
        TimeSplit(0.5, 0.5, 0.1, 0.1)
    with pytest.raises(ValueError, match="positive"):
        TimeSplit(0.5, 0.5, 0.0, 0.0)


def test_shares_must_be_finite() -> None:
    with pytest.raises(ValueError, match="positive"):
        TimeSplit(float("nan"), 0.35, 0.1, 0.15)
