"""Time-ordered splits of a real order history: nothing from the future leaks into the past."""

from __future__ import annotations

import itertools

import pandas as pd
import pytest

from examples.warehouse_export import order_export
from models.features import ORDER_TS, TARGET
from models.training.dataset import (
    MIN_ROWS_PER_SPLIT,
    ORDER_KEY,
    SPLIT_NAMES,
    TimeSplit,
    min_labelled_orders,
    order_keys,
    split_by_time,
)


def _orders(rows: int, seed: int = 3, days: int = 40) -> pd.DataFrame:
    names = {"created_at": ORDER_TS, "delivery_time_min": TARGET}
    frame = order_export(rows, days=days, seed=seed).rename(columns=names)
    frame[ORDER_TS] = pd.to_datetime(frame[ORDER_TS], utc=True)
    return frame.sort_values(ORDER_TS, kind="stable").reset_index(drop=True)


def _assert_time_ordered(parts: dict[str, pd.DataFrame]) -> None:
    for older, newer in itertools.pairwise(SPLIT_NAMES):
        # By time, then by key: orders sharing a timestamp may straddle a cut, in key order.
        last = parts[older][["order_ts", ORDER_KEY]].iloc[-1]
        first = parts[newer][["order_ts", ORDER_KEY]].iloc[0]
        assert (last["order_ts"], last[ORDER_KEY]) < (first["order_ts"], first[ORDER_KEY])


def _ids(parts: dict[str, pd.DataFrame]) -> dict[str, set[str]]:
    return {name: set(part["order_id"]) for name, part in parts.items()}


def _batches(rows: int, batch: int, seed: int) -> pd.DataFrame:
    """Labelled predictions as a service logs them: every row of a batch call shares its
    timestamp; ids like the export's prediction ids (block, then row)."""
    labels = _orders(rows, seed=seed, days=2)
    labels["order_ts"] = labels["order_ts"].iloc[(labels.index // batch) * batch].to_numpy()
    labels["order_id"] = [f"blk{i // batch:04d}{i % batch:05x}" for i in range(rows)]
    labels[ORDER_KEY] = order_keys(labels, labels["order_id"])
    return labels


def test_parts_follow_time_and_keep_every_order() -> None:
    orders = _orders(5000)
    parts = split_by_time(orders, TimeSplit())
    _assert_time_ordered(parts)
    assert sum(len(p) for p in parts.values()) == len(orders)
    assert len(parts["holdout"]) == pytest.approx(0.15 * len(orders), abs=5)
    assert len(parts["history"]) == pytest.approx(0.4 * len(orders), abs=5)


def test_orders_sharing_a_timestamp_are_cut_by_their_key_whatever_the_file_order() -> None:
    orders = _orders(4000)
    # Every order of a whole hour placed at the same second: the cuts go through those hours.
    orders["order_ts"] = orders["order_ts"].dt.floor("h")
    orders[ORDER_KEY] = order_keys(orders, orders["order_id"])
    parts = split_by_time(orders, TimeSplit())
    _assert_time_ordered(parts)
    assert [len(p) for p in parts.values()] == [1600, 1400, 400, 600]
    reshuffled = split_by_time(orders.sample(frac=1.0, random_state=4), TimeSplit())
    assert _ids(reshuffled) == _ids(parts)
    # Without ids the key is the hash of the row's values: as deterministic.
    plain = orders.drop(columns=[ORDER_KEY, "order_id"])
    first = split_by_time(plain, TimeSplit())
    again = split_by_time(plain.sample(frac=1.0, random_state=5), TimeSplit())
    for name in SPLIT_NAMES:
        pd.testing.assert_frame_equal(first[name], again[name])


def test_the_label_holdout_cuts_through_a_batch_and_keeps_each_order_on_one_side() -> None:
    history = _orders(5000)
    # 9 batches of 40 then 21 single calls, newer than the history: 381 labelled orders on 30
    # timestamps. The newest 15 % (57) are the 21 singles and 36 of the last batch's 40.
    labels = _batches(360, 40, seed=9)
    singles = _orders(21, seed=10, days=1)
    singles["order_id"] = [f"one{i:04d}00000" for i in range(21)]
    singles["order_ts"] = labels["order_ts"].max() + pd.to_timedelta(range(1, 22), unit="min")
    singles[ORDER_KEY] = order_keys(singles, singles["order_id"])
    labels = pd.concat([labels, singles], ignore_index=True)
    labels["order_ts"] += history["order_ts"].max() - labels["order_ts"].min() + pd.Timedelta("1h")
    assert labels["order_ts"].nunique() == 30

    parts = split_by_time(history, TimeSplit(), labels=labels.sample(frac=1.0, random_state=2))
    _assert_time_ordered(parts)
    holdout = parts["holdout"]
    assert len(holdout) == round(0.15 * 381) == 57
    last_batch = set(labels["order_id"].iloc[320:360])
    held_of_batch = set(holdout["order_id"]) & last_batch
    assert len(held_of_batch) == 36  # the cut is inside the batch
    earlier = set().union(*(_ids(parts)[name] for name in SPLIT_NAMES[:3]))
    assert not earlier & set(holdout["order_id"])  # no order on both sides
    assert last_batch - held_of_batch <= earlier
    # Deterministic: the same holdout whatever order the label file lists them in.
    again = split_by_time(history, TimeSplit(), labels=labels[::-1])
    assert set(again["holdout"]["order_id"]) == set(holdout["order_id"])


def test_too_few_labels_says_how_many_and_why() -> None:
    history = _orders(5000)
    labels = _batches(240, 40, seed=9)
    labels["order_ts"] += history["order_ts"].max() - labels["order_ts"].min()
    with pytest.raises(ValueError) as caught:
        split_by_time(history, TimeSplit(), labels=labels)
    message = str(caught.value)
    assert "240 labelled orders; the holdout is the newest 15% of them = 36 orders" in message
    assert f"it needs at least {MIN_ROWS_PER_SPLIT}" in message
    assert "at least 330 labelled orders" in message
    assert min_labelled_orders(TimeSplit()) == 330
    assert min_labelled_orders(TimeSplit(0.4, 0.3, 0.1, 0.2)) == 248
    split_by_time(history, TimeSplit(0.35, 0.3, 0.1, 0.25), labels=labels)  # 60 held out


def test_with_labels_the_holdout_is_the_newest_labelled_orders() -> None:
    history = _orders(5000)
    labels = _orders(800, seed=9, days=20)
    labels["order_ts"] += history["order_ts"].max() - labels["order_ts"].min() - pd.Timedelta("1D")
    parts = split_by_time(history, TimeSplit(), labels=labels)
    _assert_time_ordered(parts)
    holdout = parts["holdout"]
    assert len(holdout) == round(0.15 * len(labels))
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
