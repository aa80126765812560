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

    Every part is a contiguous time range, so no order in a later part is older than an order
    in an earlier one (orders with the same timestamp stay in one part).
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


def _cut_at_timestamps(orders: pd.DataFrame, shares: list[float]) -> list[pd.DataFrame]:
    """Split time-sorted ``orders`` into contiguous parts of about ``shares`` of the rows,
    moving each cut past orders with the same timestamp."""
    times = orders[ORDER_TS].array.asi8  # int64 view; to_numpy() of zoned times is objects
    cuts, position = [0], 0.0
    for share in shares[:-1]:
        position += share
        index = min(round(position * len(orders)), len(orders))
        if 0 < index < len(orders):
            # Whole timestamps only: the cut goes after the last order sharing its timestamp.
            index = int(np.searchsorted(times, times[index - 1], side="right"))
        cuts.append(max(index, cuts[-1]))
    cuts.append(len(orders))
    return [orders.iloc[a:b] for a, b in itertools.pairwise(cuts)]


def split_by_time(
    orders: pd.DataFrame, split: TimeSplit, labels: pd.DataFrame | None = None
) -> dict[str, pd.DataFrame]:
    """Time-ordered parts of a real order history (``orders`` sorted by ``order_ts``).

    With ``labels`` (orders the service predicted and got feedback for), the holdout is the
    newest ``split.holdout`` share of the labels -- the orders production has not trained
    on -- and everything older (history plus older labels) is split by the other shares.
    Orders of ``orders`` at or after the holdout's first timestamp are left out, so the
    holdout stays the newest data.
    """
    if labels is None:
        parts = _cut_at_timestamps(
            orders, [split.history, split.train, split.calibration, split.holdout]
        )
        result = dict(zip(SPLIT_NAMES, parts, strict=True))
    else:
        older_labels, holdout = _cut_at_timestamps(labels, [1 - split.holdout, split.holdout])
        start = holdout[ORDER_TS].min() if len(holdout) else labels[ORDER_TS].max()
        earlier = pd.concat([orders[orders[ORDER_TS] < start], older_labels])
        earlier = earlier.sort_values(ORDER_TS, kind="stable").reset_index(drop=True)
        rest = split.history + split.train + split.calibration
        parts = _cut_at_timestamps(
            earlier, [split.history / rest, split.train / rest, split.calibration / rest]
        )
        result = dict(zip(SPLIT_NAMES[:3], parts, strict=True))
        result["holdout"] = holdout
    too_small = {name: len(part) for name, part in result.items() if len(part) < MIN_ROWS_PER_SPLIT}
    if too_small:
        raise ValueError(
            f"too few orders for the time splits: {too_small} (each part needs at least "
            f"{MIN_ROWS_PER_SPLIT}; shares {split})"
        )
    return result
