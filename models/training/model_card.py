"""Model card: a markdown report with plots, written next to the registered model."""

from __future__ import annotations

import io
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: no display on servers or CI
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from models.contract import CategoryField, EntityField, FeatureContract
from models.features import TARGET
from models.intervals import CoverageCheck
from models.training.fit import SEGMENT_MIN_ROWS, linear_baseline


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def render_plots(holdout: pd.DataFrame, level: float, seed: int = 0) -> dict[str, bytes]:
    """The card's figures as PNG bytes, keyed by file name."""
    sample = holdout.sample(n=min(len(holdout), 4000), random_state=seed)
    actual, predicted = sample[TARGET], sample["predicted"]

    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(actual, predicted, s=3, alpha=0.3)
    top = float(max(actual.max(), predicted.max()))
    ax.plot([0, top], [0, top], color="black", linewidth=1)
    ax.set(
        xlabel="actual minutes", ylabel="predicted minutes", title="Predicted vs actual (holdout)"
    )
    plots = {"predicted_vs_actual.png": _png(fig)}

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.hist(holdout[TARGET] - holdout["predicted"], bins=80)
    ax.set(xlabel="actual - predicted (minutes)", ylabel="orders", title="Residuals (holdout)")
    plots["residuals.png"] = _png(fig)

    bins = pd.qcut(holdout["predicted"], 10, duplicates="drop")
    inside = (holdout[TARGET] >= holdout["lower"]) & (holdout[TARGET] <= holdout["upper"])
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


def _data_section(metadata: dict[str, Any]) -> str:
    rows = metadata["row_counts"]
    data = metadata.get("training_data", {"kind": "synthetic"})
    counts = (
        f"train {rows['train']:,}, calibration {rows['calibration']:,}, holdout {rows['holdout']:,}"
    )
    if data["kind"] != "file":
        config = metadata["training_config"]
        return f"""Synthetic order history from `models/training/synthetic_orders.py` (seed {config["seed"]}),
whose true expected delivery time is known (the Bayes floor below; the module's docstring
describes the world it simulates). Entity averages come from the earliest
{config["history_fraction"]:.0%} of days ({rows["history"]:,} orders);
the model is trained on later orders only ({counts})."""
    source = data["source"]
    ranges = data["split_time_ranges"]
    split_lines = "\n".join(
        f"| {name} | {rows[name]:,} | {ranges[name][0]} | {ranges[name][1]} |" for name in ranges
    )
    labels = data.get("labels")
    label_text = (
        f"\nRetrained with {labels['rows_read']:,} exported labels (`{labels['source']['path']}`); "
        "the holdout is the newest labelled orders."
        if labels
        else ""
    )
    return f"""Order history `{source["path"]}` ({source["format"]}, {len(source["files"])} file(s),
sha256 `{source["sha256"][:16]}…`): {data["rows_read"]:,} rows read, {data["rows_dropped"]:,}
dropped as invalid; orders from {data["time_range"][0]} to {data["time_range"][1]}.{label_text}
Split by time, oldest first (no order in a later part is older than one in an earlier part);
entity averages come from the history part only:

| part | orders | from | to |
|---|--:|---|---|
{split_lines}"""


def _segment_table(segments: list[dict[str, Any]]) -> str:
    def cell(value: float | None, digits: int) -> str:
        return "—" if value is None else f"{value:.{digits}f}"

    lines = [
        "| segment | orders | MAE (min) | coverage | mean width (min) |",
        "|---|--:|--:|--:|--:|",
    ]
    lines += [
        f"| {s['segment']}: {s['value']} | {s['rows']:,}{'*' if s['rows'] < SEGMENT_MIN_ROWS else ''}"
        f" | {cell(s.get('mae'), 3)} | {cell(s.get('coverage'), 3)} | "
        f"{cell(s.get('mean_width'), 1)} |"
        for s in segments
    ]
    if any(s["rows"] < SEGMENT_MIN_ROWS for s in segments):
        lines.append(
            f"\n\\* fewer than {SEGMENT_MIN_ROWS:,} holdout orders: the coverage may stray "
            "from the target by sampling noise alone."
        )
    return "\n".join(lines)


def _accepts(spec: Any) -> str:
    """What a field accepts, as the API and the training check read it."""
    if isinstance(spec, EntityField):
        return "an id (its mean delivery time is the model input)"
    if isinstance(spec, CategoryField):
        values = ", ".join(f"`{v}`" for v in spec.values)
        if spec.on_unseen == "other":
            return f"{values}; any other value counts as `{spec.other_value}`"
        return f"{values}; any other value is refused"
    if spec.kind == "boolean":
        return "true/false or 1/0"
    return f"{spec.minimum:g} to {spec.maximum:g}"


def fields_table(contract: FeatureContract) -> str:
    """The contract's request fields as a markdown table: kind, what each accepts, its model
    input and its monotonic constraint."""
    lines = [
        "| field | kind | accepts | model input | monotonic | required |",
        "|---|---|---|---|---|---|",
    ]
    for name, spec in contract.fields.items():
        model_input = contract.entity_feature(name) if isinstance(spec, EntityField) else name
        if isinstance(spec, CategoryField):
            model_input += " (native category)"
        required = "yes" if spec.required else f"no (default `{getattr(spec, 'default', '')}`)"
        lines.append(
            f"| `{name}` | {spec.kind} | {_accepts(spec)} | `{model_input}` | "
            f"{getattr(spec, 'monotonic', 'none')} | {required} |"
        )
    return "\n".join(lines)


def _model_description(contract: FeatureContract) -> str:
    constraints = dict(zip(contract.feature_names, contract.monotonic_constraints, strict=True))
    rising = [f"`{n}`" for n, c in constraints.items() if c > 0]
    falling = [f"`{n}`" for n, c in constraints.items() if c < 0]
    categories = [f"`{n}`" for n in contract.fields_of_kind("category")]
    parts = []
    if rising:
        parts.append(f"never predicts a shorter delivery for a larger {', '.join(rising)}")
    if falling:
        parts.append(f"never a longer one for a larger {', '.join(falling)}")
    if categories:
        parts.append(f"splits {', '.join(categories)} as native categories")
    return "; ".join(parts) if parts else "no monotonic constraints"


def _limits(contract: FeatureContract, synthetic: bool) -> str:
    lines = [
        "- Estimates for orders like the training distribution. Requests within the "
        "contract's bounds are accepted, but values outside the range the training orders "
        "covered extrapolate (trees predict flat beyond the data)."
    ]
    if contract.entity_fields:
        ids = ", ".join(f"`{n}`" for n in contract.entity_fields)
        lines.append(
            f"- An entity ({ids}) with too few orders in the history uses the history-wide "
            "mean delivery time (`features_source: default`); its predictions are less "
            "accurate (see the segment table)."
        )
    others = [
        f"`{n}`"
        for n in contract.fields_of_kind("category")
        if getattr(contract.fields[n], "on_unseen", "refuse") == "other"
    ]
    if others:
        lines.append(
            f"- Values of {', '.join(others)} the contract does not list share one `other` "
            "category: the model cannot tell them apart."
        )
    lines.append(
        "- The data is synthetic: the figures above prove the pipeline, not real-world accuracy."
        if synthetic
        else "- Figures are from the newest orders of the file: they hold while traffic looks "
        "like that period; watch the drift metrics."
    )
    return "\n".join(lines)


def coverage_text(metadata: dict[str, Any]) -> str:
    """The holdout coverage against its target band, with its 95 % CI, flagged (bold) when
    outside the band -- the promotion gate refuses it when the CI is outside too."""
    check = CoverageCheck(
        metadata["metrics"]["interval_coverage"],
        metadata["row_counts"]["holdout"],
        metadata["interval"]["level"],
    )
    text = check.describe()
    return f"**{text}**" if check.outside_band else text


def render_markdown(tag: str, metadata: dict[str, Any], contract: FeatureContract) -> str:
    """The card's text: what the model is, its fields, how good it is, and its limits."""
    m = metadata["metrics"]
    synthetic = metadata.get("training_data", {"kind": "synthetic"})["kind"] != "file"
    if "bayes_floor_mae" in m:
        floor = (
            f"| Bayes floor (true conditional mean) | {m['bayes_floor_mae']:.3f} |\n"
            f"| ratio model / floor | {m['mae_over_bayes_floor']:.3f} |\n"
        )
    else:
        floor = "| Bayes floor | unknown for real data (the true expectation is not observed) |\n"
    baseline_field, baseline_metric = linear_baseline(contract)
    features = ", ".join(f"`{f}`" for f in contract.feature_names)
    description = f"\n{contract.description}\n" if contract.description else ""
    return f"""# Model card: {tag}

Gradient-boosted trees (scikit-learn `HistGradientBoostingRegressor`; {_model_description(contract)})
predicting delivery time in minutes, with a conformalised-quantile-regression (CQR)
{metadata["interval"]["level"]:.0%} prediction interval.
{description}
## Data
{_data_section(metadata)}

Training-data sha256 `{metadata["training_data_sha256"][:16]}…`.

## Fields (the feature contract: the API of the service serving this model)
{fields_table(contract)}

Target: `{contract.target.column}` ({contract.target.description}, {contract.target.minimum:g} to
{contract.target.maximum:g}); order time: `{contract.timestamp.column}`.
Model inputs, in order: {features}.

## Holdout results
| | MAE (min) |
|---|---|
| model | {m["holdout_mae"]:.3f} |
{floor}| baseline: training mean | {m["baseline_mean_mae"]:.3f} |
| baseline: `{baseline_field}`-only linear | {m[baseline_metric]:.3f} |

RMSE {m["holdout_rmse"]:.3f} min. Interval coverage {coverage_text(metadata)},
mean width {m["interval_mean_width"]:.1f} min.

### By segment
{_segment_table(metadata.get("segments", []))}

![predicted vs actual](predicted_vs_actual.png)
![residuals](residuals.png)
![coverage](interval_coverage.png)

## Intended use and limits
{_limits(contract, synthetic)}
"""
