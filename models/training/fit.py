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
from models.intervals import category_corrections, coverage, cqr_correction
from models.model import DeliveryTimeModel
from models.training.config import TrainingConfig
from models.training.dataset import generate_splits, training_data_fingerprint
from models.training.synthetic_orders import generate_order_history

logger = logging.getLogger(__name__)

INTERVAL_LEVEL = 0.90
SEGMENT_MIN_ROWS = 1000
"""A segment with fewer holdout orders has too noisy a coverage to hold to 0.87-0.93 (two
standard errors of a 90 % coverage are +-0.019 at 1,000 orders, +-0.035 at 300); its figures
are still reported."""


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
    baselines: dict[str, Any] = field(default_factory=dict)
    """The baselines' fits (training mean, one-field linear): recorded so that the promotion
    gate can score them on its holdout, row by row, beside the model."""


def _regressor(
    config: TrainingConfig, contract: FeatureContract, **kwargs: Any
) -> HistGradientBoostingRegressor:
    # The contract's monotonic constraints (the default's: every feature can only lengthen a
    # delivery, so the trees can't learn noise the other way and the directional tests hold by
    # construction); categories split natively. The quantile models take the interval's own
    # size (TrainingConfig.interval_max_iter / interval_learning_rate).
    categorical = list(contract.categorical_mask)
    quantile = kwargs.get("loss") == "quantile"
    return HistGradientBoostingRegressor(
        max_iter=config.interval_max_iter if quantile else config.max_iter,
        learning_rate=config.interval_learning_rate if quantile else config.learning_rate,
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
    """Generate the synthetic history of ``config``, then :func:`fit_and_evaluate` it.

    The synthetic history has the default contract's columns: an optional field it lacks takes
    its default on every row (as in a file without that column), a required one is refused
    (:class:`ValueError` naming the fields) -- train such a contract on data.
    """
    contract = contract or default_contract()
    _, sample = generate_order_history(10, n_restaurants=1, n_drivers=1)
    lacking = [n for n, s in contract.fields.items() if s.required and n not in sample.columns]
    defaulted = [n for n in contract.fields if n not in sample.columns and n not in lacking]
    if defaulted:
        logger.info("synthetic history: %s take their defaults", ", ".join(defaulted))
    if lacking:
        raise ValueError(
            f"the synthetic order history has no column for field(s) {', '.join(lacking)}: "
            "train this contract on your own data (--data / DATA=)"
        )
    logger.info("generating %d orders (seed %d)", config.n_orders, config.seed)
    return fit_and_evaluate(generate_splits(config), config, contract)


def linear_baseline(contract: FeatureContract) -> tuple[str, str]:
    """(field, metric name) of the one-feature linear baseline: a linear fit on the first
    number or integer field the contract declares (else its first direct field).

    The metric is ``baseline_<label>_linear_mae`` where the label is the field's cohort
    dimension when it declares one, else the field's name -- for the default contract the
    long-standing ``baseline_distance_linear_mae``.
    """
    numbers = contract.fields_of_kind("number", "integer") or [contract.direct_fields[0]]
    name = numbers[0]
    cohort = getattr(contract.fields[name], "cohort", None)
    label = cohort.dimension if cohort is not None else name
    return name, f"baseline_{label}_linear_mae"


def category_inputs(
    contract: FeatureContract, features: np.ndarray
) -> tuple[tuple[int, ...], tuple[tuple[int, ...], ...]]:
    """(levels per model input, codes per model input the rows never hold) for
    ``DeliveryTimeModel``'s ``category_levels`` / ``unfitted_category_codes``: both empty
    when the contract has no category, or when every code occurs in ``features``."""
    levels = tuple(
        len(contract.category_levels(name)) if is_category else 0
        for name, is_category in zip(contract.feature_names, contract.categorical_mask, strict=True)
    )
    unfitted = []
    for column, count in enumerate(levels):
        values = features[:, column]
        seen = set(np.unique(values[~np.isnan(values)]).astype(int).tolist()) if count else set()
        unfitted.append(tuple(code for code in range(count) if code not in seen))
    return (
        levels if any(levels) else (),
        tuple(unfitted) if any(unfitted) else (),
    )


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
    so a holdout segment and a live cohort of the same name are the same orders, then every
    value of each category field that declares no cohort (segment: the field's name, value:
    the category value; values no holdout order has are left out).

    A segment with fewer than :data:`SEGMENT_MIN_ROWS` orders is reported too; its coverage
    is noisier (the model card marks it)."""
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
    contract = cohorts.contract
    for name in contract.fields_of_kind("category"):
        if getattr(contract.fields[name], "cohort", None) is not None:
            continue  # its values are cohorts already
        column = features[:, contract.feature_names.index(name)]
        for code, level in enumerate(contract.category_levels(name)):
            mask = column == code
            if mask.any():
                segments.append((name, str(level), mask))
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
    cal_lower, cal_upper = fitted["lower"].predict(x_cal), fitted["upper"].predict(x_cal)
    correction = cqr_correction(target["calibration"], cal_lower, cal_upper, INTERVAL_LEVEL)
    category_levels, unfitted_codes = category_inputs(contract, x_train)
    category_columns = {c: n for c, n in enumerate(category_levels) if n}
    per_category = category_corrections(
        target["calibration"],
        cal_lower,
        cal_upper,
        {column: x_cal[:, column] for column in category_columns},
        category_columns,
        INTERVAL_LEVEL,
        correction,
    )
    model = DeliveryTimeModel(
        point_model=fitted["point"],
        lower_model=fitted["lower"],
        upper_model=fitted["upper"],
        interval_correction=correction,
        feature_names=contract.feature_names,
        interval_level=INTERVAL_LEVEL,
        category_levels=category_levels,
        unfitted_category_codes=unfitted_codes,
        category_corrections=per_category,
    )

    x_hold = frames["holdout"].to_numpy()
    y_hold = target["holdout"]
    outputs = model.predict_rows(x_hold)
    point, lower, upper = outputs[:, 0], outputs[:, 1], outputs[:, 2]
    mean_baseline = np.full_like(y_hold, target["train"].mean())
    # The simplest real baseline: a linear fit on one declared number (the default contract's
    # distance).
    baseline_field, baseline_metric = linear_baseline(contract)
    linear = LinearRegression().fit(frames["train"][[baseline_field]], target["train"])
    linear_predictions = linear.predict(frames["holdout"][[baseline_field]])

    def mae(pred: np.ndarray) -> float:
        return float(np.mean(np.abs(y_hold - pred)))

    metrics = {
        "holdout_mae": mae(point),
        "holdout_rmse": float(np.sqrt(np.mean((y_hold - point) ** 2))),
        "baseline_mean_mae": mae(mean_baseline),
        baseline_metric: mae(linear_predictions),
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
        baselines={
            "training_mean": float(target["train"].mean()),
            "linear": {
                "field": baseline_field,
                "intercept": float(linear.intercept_),
                "slope": float(linear.coef_[0]),
            },
        },
    )
