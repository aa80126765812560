"""The training data of a run: the generated history, its time split and its fingerprint.

The promotion gate regenerates a candidate's holdout from the same functions and checks the
fingerprint recorded at training, so both sides must use exactly these.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from models.contract import FeatureContract
from models.features import ORDER_TS, TARGET, EntityFeatures, training_frame
from models.training.config import TrainingConfig
from models.training.synthetic_orders import generate_order_history


def split_rows(orders: pd.DataFrame, history_fraction: float, seed: int) -> dict[str, pd.DataFrame]:
    """Time split: earliest days -> entity history; the rest -> train / calibration / holdout."""
    days = orders[ORDER_TS].dt.normalize()
    cutoff = days.min() + (days.max() - days.min()) * history_fraction
    history = orders[days < cutoff]
    later = orders[days >= cutoff].sample(frac=1.0, random_state=seed)
    n = len(later)
    return {
        "history": history,
        "train": later.iloc[: int(n * 0.6)],
        "calibration": later.iloc[int(n * 0.6) : int(n * 0.8)],
        "holdout": later.iloc[int(n * 0.8) :],
    }


def generate_splits(config: TrainingConfig) -> dict[str, pd.DataFrame]:
    """The order history of ``config``, split by :func:`split_rows` (deterministic per seed)."""
    _, orders = generate_order_history(
        config.n_orders,
        n_restaurants=config.n_restaurants,
        n_drivers=config.n_drivers,
        seed=config.seed,
    )
    return split_rows(orders, config.history_fraction, config.seed)


def training_data_fingerprint(
    train_orders: pd.DataFrame, contract: FeatureContract, entities: EntityFeatures
) -> str:
    """sha256 of the training rows as the model saw them (features joined with ``entities``,
    plus the target), so a registered model names the exact data it was fitted on."""
    rows = pd.concat(
        [training_frame(train_orders, contract, entities), train_orders[[TARGET]]], axis=1
    )
    hashed = pd.util.hash_pandas_object(rows, index=False).to_numpy()
    return hashlib.sha256(hashed.tobytes()).hexdigest()


@dataclass(frozen=True)
class TimeSplit:
    """Shares of a real order history, oldest first: entity history, train, calibration, holdout.

    Every part is a contiguous range of the orders sorted by time, then by their key
    (:data:`ORDER_KEY`), so no order in a later part is older than an order in an earlier one.
    Orders with the same timestamp may fall on both sides of a cut (a batch of predictions
    shares one timestamp); each order is on one side only.
    """

    history: float = 0.4
    """Oldest share: only for the entity averages (never a training row)."""
    train: float = 0.35
    calibration: float = 0.1
    holdout: float = 0.15
    """Newest share: the report's and the promotion gate's holdout."""

    def __post_init__(self) -> None:
        shares = (self.history, self.train, self.calibration, self.holdout)
        if not all(math.isfinite(s) and s > 0 for s in shares) or abs(sum(shares) - 1.0) > 1e-9:
            raise ValueError(f"split shares must be positive and sum to 1, got {shares}")


SPLIT_NAMES = ("history", "train", "calibration", "holdout")
MIN_ROWS_PER_SPLIT = 50

ORDER_KEY = "_order_key"
"""Per order: a 64-bit hash of its id (the file's ``order_id``, a label's ``prediction_id``),
else of its values. Orders sort by time, then by this key: a cut through orders sharing a
timestamp is the same whatever order the file listed them in. (Not a valid contract field
name, which starts with a letter: it never collides with one.)"""


def order_keys(orders: pd.DataFrame, ids: pd.Series | None = None) -> np.ndarray:
    """:data:`ORDER_KEY` of each of ``orders``: the hash of its id in ``ids`` (aligned with
    ``orders``; empty ids fall back), else of all its columns but the key."""
    values = orders.drop(columns=[ORDER_KEY], errors="ignore")
    keys = pd.util.hash_pandas_object(values, index=False).to_numpy()
    if ids is not None:
        present = ids.notna().to_numpy() & (ids.astype("string").str.len() > 0).to_numpy()
        # Hashed as text: an id read as 7 in one file and "7" in another is one order.
        hashed = pd.util.hash_pandas_object(ids.astype("string"), index=False).to_numpy()
        keys = np.where(present, hashed, keys)
    return keys


def sort_orders(orders: pd.DataFrame) -> pd.DataFrame:
    """``orders`` by time, ties by :data:`ORDER_KEY` (added from the values when absent)."""
    if ORDER_KEY not in orders:
        orders = orders.assign(**{ORDER_KEY: order_keys(orders)})
    times = orders[ORDER_TS].array.asi8  # int64 view; to_numpy() of zoned times is objects
    keys = orders[ORDER_KEY].to_numpy()
    later = times[1:] > times[:-1]
    if (later | ((times[1:] == times[:-1]) & (keys[1:] >= keys[:-1]))).all():
        return orders.reset_index(drop=True)  # already in order (read_order_history sorts)
    # np.lexsort (stable, last key first) is several times faster than a two-column sort_values.
    return orders.iloc[np.lexsort((keys, times))].reset_index(drop=True)


def _part_sizes(rows: int, shares: list[float]) -> list[int]:
    """Rows of each part: cuts at the rounded cumulative shares (the last part takes the rest)."""
    cuts, position = [0], 0.0
    for share in shares[:-1]:
        position += share
        cuts.append(max(min(round(position * rows), rows), cuts[-1]))
    cuts.append(rows)
    return [b - a for a, b in itertools.pairwise(cuts)]


def _cut(orders: pd.DataFrame, shares: list[float]) -> list[pd.DataFrame]:
    """Split ``orders`` (sorted by :func:`sort_orders`) into contiguous parts of ``shares``
    of the rows. The cuts fall between rows, also between rows of one timestamp: the key
    orders those, so the cut is deterministic, and an order is one row, on one side."""
    sizes = _part_sizes(len(orders), shares)
    bounds = [0, *itertools.accumulate(sizes)]
    return [orders.iloc[a:b] for a, b in itertools.pairwise(bounds)]


def holdout_size(labelled: int, split: TimeSplit) -> int:
    """Labelled orders in the holdout of ``labelled`` ones: the newest ``split.holdout``."""
    return _part_sizes(labelled, [1 - split.holdout, split.holdout])[1]


def min_labelled_orders(split: TimeSplit) -> int:
    """The fewest labelled orders whose holdout share reaches :data:`MIN_ROWS_PER_SPLIT`."""
    rows = math.floor(MIN_ROWS_PER_SPLIT / split.holdout)
    while holdout_size(rows, split) < MIN_ROWS_PER_SPLIT:
        rows += 1
    while rows > 1 and holdout_size(rows - 1, split) >= MIN_ROWS_PER_SPLIT:
        rows -= 1
    return rows


class TooFewLabels(ValueError):
    """The labelled orders' holdout share is below :data:`MIN_ROWS_PER_SPLIT`."""


def split_by_time(
    orders: pd.DataFrame, split: TimeSplit, labels: pd.DataFrame | None = None
) -> dict[str, pd.DataFrame]:
    """Time-ordered parts of a real order history (ties in time broken by :data:`ORDER_KEY`).

    With ``labels`` (orders the service predicted and got feedback for), the holdout is the
    newest ``split.holdout`` share of the labelled orders -- the orders production has not
    trained on -- and everything older (history plus older labels) is split by the other
    shares. Orders of ``orders`` at or after the holdout's first timestamp are left out, so
    the holdout stays the newest data.
    """
    orders = sort_orders(orders)
    if labels is None:
        parts = _cut(orders, [split.history, split.train, split.calibration, split.holdout])
        result = dict(zip(SPLIT_NAMES, parts, strict=True))
    else:
        labels = sort_orders(labels)
        held = holdout_size(len(labels), split)
        if held < MIN_ROWS_PER_SPLIT:
            raise TooFewLabels(
                f"too few labelled orders: {len(labels):,} labelled orders; the holdout is the "
                f"newest {split.holdout:.0%} of them = {held:,} orders, it needs at least "
                f"{MIN_ROWS_PER_SPLIT}: retraining on labels needs at least "
                f"{min_labelled_orders(split):,} labelled orders with this holdout share"
            )
        older_labels, holdout = _cut(labels, [1 - split.holdout, split.holdout])
        start = holdout[ORDER_TS].min()
        earlier = sort_orders(pd.concat([orders[orders[ORDER_TS] < start], older_labels]))
        rest = split.history + split.train + split.calibration
        parts = _cut(earlier, [split.history / rest, split.train / rest, split.calibration / rest])
        result = dict(zip(SPLIT_NAMES[:3], parts, strict=True))
        result["holdout"] = holdout
    too_small = {name: len(part) for name, part in result.items() if len(part) < MIN_ROWS_PER_SPLIT}
    if too_small:
        raise ValueError(
            f"too few orders for the time splits: {too_small} (each part needs at least "
            f"{MIN_ROWS_PER_SPLIT}; shares {split})"
        )
    return result
