"""Fit, calibrate and evaluate the delivery-time model on an order history split in parts."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import LinearRegression

from models.cohorts import Cohorts
from models.contract import CategoryField, FeatureContract, default_contract
from models.drift_stats import category_bins, reference_bins
from models.features import (
    TARGET,
    EntityFeatures,
    compute_entity_features,
    training_frame,
)
from models.intervals import coverage, cqr_correction
from models.model import DeliveryTimeModel
from models.training.config import TrainingConfig
from models.training.dataset import generate_splits, training_data_fingerprint

logger = logging.getLogger(__name__)

INTERVAL_LEVEL = 0.90


@dataclass
class TrainingResult:
    """Everything ``train.py`` registers: the model, its entity features and its report."""

    model: DeliveryTimeModel
    entities: EntityFeatures
    metrics: dict[str, float]
    reference_stats: dict[str, dict[str, list[float]]]
    cohort_reference: dict[str, Any]
    """Cohort shares and per-cohort prediction bins of the train part (``models.cohorts``)."""
    data_hash: str
    n_rows: dict[str, int]
    holdout: pd.DataFrame = field(repr=False)
    """Holdout orders with features, actuals and the model's outputs (for the model card)."""
    segments: list[dict[str, Any]] = field(default_factory=list)
    """Holdout MAE / coverage / width per segment (:func:`segment_metrics`)."""


def _regressor(
    config: TrainingConfig, contract: FeatureContract, **kwargs: Any
) -> HistGradientBoostingRegressor:
    # The contract's monotonic constraints (the default's: every feature can only lengthen a
    # delivery, so the trees can't learn noise the other way and the directional tests hold by
    # construction); categories split natively.
    categorical = list(contract.categorical_mask)
    return HistGradientBoostingRegressor(
        max_iter=config.max_iter,
        learning_rate=config.learning_rate,
        max_leaf_nodes=31,
        min_samples_leaf=40,
        monotonic_cst=list(contract.monotonic_constraints),
        categorical_features=categorical if any(categorical) else None,
        early_stopping=False,
        random_state=config.seed,
        **kwargs,
    )


def reference_statistics(
    features: pd.DataFrame, predictions: np.ndarray, contract: FeatureContract
) -> dict[str, dict[str, list[float]]]:
    """Reference bins and shares per input feature and for the prediction (for drift PSI):
    quantile bins for numbers, one bin per value for categories (their shares)."""
    stats = {}
    for name in features.columns:
        spec = contract.fields.get(name)
        values = features[name].to_numpy()
        if isinstance(spec, CategoryField):
            stats[name] = category_bins(values, len(spec.levels()))
        else:
            stats[name] = reference_bins(values)
    stats["predicted_delivery_time_min"] = reference_bins(predictions)
    return stats


def train_model(config: TrainingConfig, contract: FeatureContract | None = None) -> TrainingResult:
    """Generate the synthetic history of ``config``, then :func:`fit_and_evaluate` it (the
    synthetic history has the default contract's columns)."""
    logger.info("generating %d orders (seed %d)", config.n_orders, config.seed)
    return fit_and_evaluate(generate_splits(config), config, contract or default_contract())


def entities_known(
    orders: pd.DataFrame, contract: FeatureContract, entities: EntityFeatures
) -> np.ndarray:
    """Per order, whether every entity of it has an aggregate in ``entities`` (the
    training-side twin of the service's "no entity feature fell back to the default")."""
    known = np.ones(len(orders), dtype=bool)
    for entity in contract.entity_fields:
        table = entities.tables[contract.entity_feature(entity)]
        known &= orders[entity].astype(str).isin(table.keys()).to_numpy()
    return known


def segment_metrics(
    holdout: pd.DataFrame, features: np.ndarray, known: np.ndarray, cohorts: Cohorts
) -> list[dict[str, Any]]:
    """MAE, interval coverage and mean width per segment of ``holdout`` (with ``predicted``,
    ``lower``, ``upper``): all orders, then every cohort of the contract (``models.cohorts``),
    so a holdout segment and a live cohort of the same name are the same orders."""
    actual = holdout[TARGET].to_numpy()
    inside = (actual >= holdout["lower"].to_numpy()) & (actual <= holdout["upper"].to_numpy())
    error = np.abs(actual - holdout["predicted"].to_numpy())
    width = (holdout["upper"] - holdout["lower"]).to_numpy()
    codes = cohorts.codes(features, known)
    segments: list[tuple[str, str, np.ndarray]] = [
        ("all", "all orders", np.ones(len(holdout), dtype=bool))
    ]
    for index, name in enumerate(cohorts.names):
        dimension = next(d for d, names in cohorts.dimensions.items() if name in names)
        segments.append((dimension, name, cohorts.members(codes, index)))
    rows = []
    for kind, name, mask in segments:
        count = int(mask.sum())
        row: dict[str, Any] = {"segment": kind, "value": name, "rows": count}
        if count:  # an empty segment has no figures (and BentoML metadata holds no None)
            row["mae"] = round(float(error[mask].mean()), 4)
            row["coverage"] = round(float(inside[mask].mean()), 4)
            row["mean_width"] = round(float(width[mask].mean()), 3)
        rows.append(row)
    return rows


def fit_and_evaluate(
    parts: dict[str, pd.DataFrame], config: TrainingConfig, contract: FeatureContract
) -> TrainingResult:
    """Entity averages from ``parts["history"]``; fit point + quantile models on ``train``,
    conformalise on ``calibration``, evaluate on ``holdout`` against the baselines.

    The Bayes floor is reported only when the rows carry their true expectation (the
    synthetic generator's ``expected_delivery_time_min``): for real data it is unknown.
    """
    entities = compute_entity_features(parts["history"], contract)
    frames = {
        name: training_frame(parts[name], contract, entities)
        for name in ("train", "calibration", "holdout")
    }
    target = {name: parts[name][TARGET].to_numpy() for name in frames}

    x_train = frames["train"].to_numpy()
    fitted = {}
    steps: list[tuple[str, dict[str, Any]]] = [
        ("point", {"loss": "squared_error"}),
        ("lower", {"loss": "quantile", "quantile": (1 - INTERVAL_LEVEL) / 2}),
        ("upper", {"loss": "quantile", "quantile": 1 - (1 - INTERVAL_LEVEL) / 2}),
    ]
    for step, (name, kwargs) in enumerate(steps, start=1):
        started = time.perf_counter()
        logger.info("[%d/4] fitting %s model on %s rows", step, name, f"{len(x_train):,}")
        fitted[name] = _regressor(config, contract, **kwargs).fit(x_train, target["train"])
        logger.info("[%d/4] %s model fitted in %.1f s", step, name, time.perf_counter() - started)

    logger.info("[4/4] calibrating the interval on %s rows", f"{len(frames['calibration']):,}")
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
        feature_names=contract.feature_names,
        interval_level=INTERVAL_LEVEL,
    )

    x_hold = frames["holdout"].to_numpy()
    y_hold = target["holdout"]
    outputs = model.predict_rows(x_hold)
    point, lower, upper = outputs[:, 0], outputs[:, 1], outputs[:, 2]
    mean_baseline = np.full_like(y_hold, target["train"].mean())
    # The simplest real baseline: a linear fit on the first declared number (the default
    # contract's distance).
    numbers = contract.fields_of_kind("number", "integer") or [contract.direct_fields[0]]
    linear = LinearRegression().fit(frames["train"][numbers[:1]], target["train"])
    linear_baseline = linear.predict(frames["holdout"][numbers[:1]])

    def mae(pred: np.ndarray) -> float:
        return float(np.mean(np.abs(y_hold - pred)))

    metrics = {
        "holdout_mae": mae(point),
        "holdout_rmse": float(np.sqrt(np.mean((y_hold - point) ** 2))),
        "baseline_mean_mae": mae(mean_baseline),
        "baseline_distance_linear_mae": mae(linear_baseline),
        "interval_coverage": coverage(y_hold, lower, upper),
        "interval_mean_width": float(np.mean(upper - lower)),
        "interval_correction_min": correction,
    }
    if "expected_delivery_time_min" in parts["holdout"]:
        metrics["bayes_floor_mae"] = mae(parts["holdout"]["expected_delivery_time_min"].to_numpy())
        metrics["mae_over_bayes_floor"] = metrics["holdout_mae"] / metrics["bayes_floor_mae"]

    train_points = model.predict_rows(x_train)[:, 0]
    cohorts = Cohorts(contract)
    holdout = parts["holdout"].reset_index(drop=True).copy()
    for name in contract.feature_names:
        holdout[f"feature_{name}"] = frames["holdout"][name].to_numpy()
    holdout["predicted"], holdout["lower"], holdout["upper"] = point, lower, upper

    return TrainingResult(
        model=model,
        entities=entities,
        metrics={k: round(v, 6) for k, v in metrics.items()},
        reference_stats=reference_statistics(frames["train"], train_points, contract),
        cohort_reference=cohorts.reference(
            x_train, train_points, entities_known(parts["train"], contract, entities)
        ),
        data_hash=training_data_fingerprint(parts["train"], contract, entities),
        n_rows={name: len(part) for name, part in parts.items()},
        holdout=holdout,
        segments=segment_metrics(
            holdout, x_hold, entities_known(parts["holdout"], contract, entities), cohorts
        ),
    )
