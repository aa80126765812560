"""The training data of a run: the generated history, its time split and its fingerprint.

The promotion gate regenerates a candidate's holdout from the same functions and checks the
fingerprint recorded at training, so both sides must use exactly these.
"""

from __future__ import annotations

import hashlib

import pandas as pd

from models.features import EntityFeatures, training_frame
from models.training.config import TrainingConfig
from models.training.synthetic_orders import generate_order_history


def split_rows(orders: pd.DataFrame, history_fraction: float, seed: int) -> dict[str, pd.DataFrame]:
    """Time split: earliest days -> entity history; the rest -> train / calibration / holdout."""
    days = orders["order_ts"].dt.normalize()
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


def training_data_fingerprint(train_orders: pd.DataFrame, entities: EntityFeatures) -> str:
    """sha256 of the training rows as the model saw them (features joined with ``entities``,
    plus the target), so a registered model names the exact data it was fitted on."""
    rows = pd.concat(
        [training_frame(train_orders, entities), train_orders[["delivery_time_minutes"]]], axis=1
    )
    hashed = pd.util.hash_pandas_object(rows, index=False).to_numpy()
    return hashlib.sha256(hashed.tobytes()).hexdigest()
