"""Fit, calibrate and evaluate the delivery-time model on a generated order history."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import LinearRegression

from models.drift_stats import reference_bins
from models.features import FEATURE_NAMES, EntityFeatures, compute_entity_features, training_frame
from models.intervals import coverage, cqr_correction
from models.model import DeliveryTimeModel
from models.training.config import TrainingConfig
from models.training.dataset import generate_splits, training_data_fingerprint

logger = logging.getLogger(__name__)

# Every feature can only lengthen a delivery: encode that so the trees can't learn noise the
# other way (and the directional tests hold by construction, not by luck).
MONOTONIC = {name: 1 for name in FEATURE_NAMES}
INTERVAL_LEVEL = 0.90


@dataclass
class TrainingResult:
    """Everything ``train.py`` registers: the model, its entity features and its report."""

    model: DeliveryTimeModel
    entities: EntityFeatures
    metrics: dict[str, float]
    reference_stats: dict[str, dict[str, list[float]]]
    data_hash: str
    n_rows: dict[str, int]
    holdout: pd.DataFrame = field(repr=False)
    """Holdout orders with features, actuals and the model's outputs (for the model card)."""


def _regressor(config: TrainingConfig, **kwargs: Any) -> HistGradientBoostingRegressor:
    return HistGradientBoostingRegressor(
        max_iter=config.max_iter,
        learning_rate=config.learning_rate,
        max_leaf_nodes=31,
        min_samples_leaf=40,
        monotonic_cst=[MONOTONIC[name] for name in FEATURE_NAMES],
        early_stopping=False,
        random_state=config.seed,
        **kwargs,
    )


def reference_statistics(
    features: pd.DataFrame, predictions: np.ndarray
) -> dict[str, dict[str, list[float]]]:
    """Reference bins and shares per input feature and for the prediction (for drift PSI)."""
    columns = {name: features[name].to_numpy() for name in features.columns}
    columns["predicted_delivery_time_min"] = predictions
    return {name: reference_bins(values) for name, values in columns.items()}


def train_model(config: TrainingConfig) -> TrainingResult:
    """Generate data, fit point + quantile models, conformalise, evaluate on the holdout."""
    logger.info("generating %d orders (seed %d)", config.n_orders, config.seed)
    parts = generate_splits(config)
    entities = compute_entity_features(parts["history"])
    frames = {
        name: training_frame(parts[name], entities) for name in ("train", "calibration", "holdout")
    }
    target = {name: parts[name]["delivery_time_minutes"].to_numpy() for name in frames}

    x_train = frames["train"].to_numpy()
    fitted = {}
    steps: list[tuple[str, dict[str, Any]]] = [
        ("point", {"loss": "squared_error"}),
        ("lower", {"loss": "quantile", "quantile": (1 - INTERVAL_LEVEL) / 2}),
        ("upper", {"loss": "quantile", "quantile": 1 - (1 - INTERVAL_LEVEL) / 2}),
    ]
    for step, (name, kwargs) in enumerate(steps, start=1):
        logger.info("[%d/3] fitting %s model on %d rows", step, name, len(x_train))
        fitted[name] = _regressor(config, **kwargs).fit(x_train, target["train"])

    x_cal = frames["calibration"].to_numpy()
    correction = cqr_correction(
        target["calibration"],
        fitted["lower"].predict(x_cal),
        fitted["upper"].predict(x_cal),
        INTERVAL_LEVEL,
    )
    model = DeliveryTimeModel(
        point_model=fitted["point"],
        lower_model=fitted["lower"],
        upper_model=fitted["upper"],
        interval_correction=correction,
        feature_names=FEATURE_NAMES,
        interval_level=INTERVAL_LEVEL,
    )

    x_hold = frames["holdout"].to_numpy()
    y_hold = target["holdout"]
    outputs = model.predict_rows(x_hold)
    point, lower, upper = outputs[:, 0], outputs[:, 1], outputs[:, 2]
    mean_baseline = np.full_like(y_hold, target["train"].mean())
    distance_only = LinearRegression().fit(frames["train"][["distance_km"]], target["train"])
    distance_baseline = distance_only.predict(frames["holdout"][["distance_km"]])
    bayes = parts["holdout"]["expected_delivery_time_min"].to_numpy()

    def mae(pred: np.ndarray) -> float:
        return float(np.mean(np.abs(y_hold - pred)))

    metrics = {
        "holdout_mae": mae(point),
        "holdout_rmse": float(np.sqrt(np.mean((y_hold - point) ** 2))),
        "bayes_floor_mae": mae(bayes),
        "baseline_mean_mae": mae(mean_baseline),
        "baseline_distance_linear_mae": mae(distance_baseline),
        "interval_coverage": coverage(y_hold, lower, upper),
        "interval_mean_width": float(np.mean(upper - lower)),
        "interval_correction_min": correction,
    }
    metrics["mae_over_bayes_floor"] = metrics["holdout_mae"] / metrics["bayes_floor_mae"]

    holdout = parts["holdout"].reset_index(drop=True).copy()
    for name in FEATURE_NAMES:
        holdout[f"feature_{name}"] = frames["holdout"][name].to_numpy()
    holdout["predicted"], holdout["lower"], holdout["upper"] = point, lower, upper

    return TrainingResult(
        model=model,
        entities=entities,
        metrics={k: round(v, 6) for k, v in metrics.items()},
        reference_stats=reference_statistics(frames["train"], model.predict_rows(x_train)[:, 0]),
        data_hash=training_data_fingerprint(parts["train"], entities),
        n_rows={name: len(part) for name, part in parts.items()},
        holdout=holdout,
    )
