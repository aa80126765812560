"""Model card: a markdown report with plots, written next to the registered model."""

from __future__ import annotations

import io
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: no display on servers or CI
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

PLOTS = ("predicted_vs_actual.png", "residuals.png", "interval_coverage.png")


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def render_plots(holdout: pd.DataFrame, level: float, seed: int = 0) -> dict[str, bytes]:
    """The card's figures as PNG bytes, keyed by file name."""
    sample = holdout.sample(n=min(len(holdout), 4000), random_state=seed)
    actual, predicted = sample["delivery_time_minutes"], sample["predicted"]

    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(actual, predicted, s=3, alpha=0.3)
    top = float(max(actual.max(), predicted.max()))
    ax.plot([0, top], [0, top], color="black", linewidth=1)
    ax.set(
        xlabel="actual minutes", ylabel="predicted minutes", title="Predicted vs actual (holdout)"
    )
    plots = {"predicted_vs_actual.png": _png(fig)}

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.hist(holdout["delivery_time_minutes"] - holdout["predicted"], bins=80)
    ax.set(xlabel="actual - predicted (minutes)", ylabel="orders", title="Residuals (holdout)")
    plots["residuals.png"] = _png(fig)

    bins = pd.qcut(holdout["predicted"], 10, duplicates="drop")
    inside = (holdout["delivery_time_minutes"] >= holdout["lower"]) & (
        holdout["delivery_time_minutes"] <= holdout["upper"]
    )
    by_bin = inside.groupby(bins, observed=True).mean()
    width = (holdout["upper"] - holdout["lower"]).groupby(bins, observed=True).mean()
    fig, ax = plt.subplots(figsize=(7, 4))
    positions = np.arange(len(by_bin))
    ax.bar(positions, by_bin.to_numpy())
    ax.axhline(level, color="black", linestyle="--", linewidth=1, label=f"target {level:.0%}")
    ax.set_xticks(positions, [f"{w:.0f}" for w in width.to_numpy()])
    ax.set(
        ylim=(0.5, 1.0),
        xlabel="mean interval width (min), by predicted-time decile",
        ylabel="coverage",
        title="Interval coverage (holdout)",
    )
    ax.legend()
    plots["interval_coverage.png"] = _png(fig)
    return plots


def render_markdown(tag: str, metadata: dict[str, Any]) -> str:
    """The card's text: what the model is, how good it is, and its limits."""
    m = metadata["metrics"]
    rows = metadata["row_counts"]
    return f"""# Model card: {tag}

Gradient-boosted trees (scikit-learn `HistGradientBoostingRegressor`, monotone in every
feature) predicting food-delivery time in minutes, with a conformalised-quantile-regression
(CQR) {metadata["interval"]["level"]:.0%} prediction interval.

## Data
Synthetic order history from `models/training/synthetic_orders.py` (seed {metadata["training_config"]["seed"]}):
restaurants with their own preparation profile, drivers with their own speed, distance, peak
hours, order value, heteroscedastic Gaussian noise. Entity averages come from the earliest
{metadata["training_config"]["history_fraction"]:.0%} of days ({rows["history"]:,} orders);
the model is trained on later orders only (train {rows["train"]:,}, calibration
{rows["calibration"]:,}, holdout {rows["holdout"]:,}).
Training-data sha256 `{metadata["training_data_sha256"][:16]}…`.

Features, in order: {", ".join(f"`{f}`" for f in metadata["feature_names"])}.

## Holdout results
| | MAE (min) |
|---|---|
| model | {m["holdout_mae"]:.3f} |
| Bayes floor (true conditional mean) | {m["bayes_floor_mae"]:.3f} |
| ratio model / floor | {m["mae_over_bayes_floor"]:.3f} |
| baseline: training mean | {m["baseline_mean_mae"]:.3f} |
| baseline: distance-only linear | {m["baseline_distance_linear_mae"]:.3f} |

RMSE {m["holdout_rmse"]:.3f} min. Interval coverage {m["interval_coverage"]:.3f}
(target {metadata["interval"]["level"]:.2f}), mean width {m["interval_mean_width"]:.1f} min.

![predicted vs actual](predicted_vs_actual.png)
![residuals](residuals.png)
![coverage](interval_coverage.png)

## Intended use and limits
- Estimates for orders like the training distribution: 0.2-25 km, known peak-hour pattern.
  Requests up to 50 km are accepted but extrapolate (trees predict flat beyond the data).
- Unknown restaurants/drivers use the history-wide mean delivery time (`features_source: default`);
  their predictions are less accurate.
- The data is synthetic: the figures above prove the pipeline, not real-world accuracy.
"""
