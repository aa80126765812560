"""The gate's absolute criteria: every promotion, the first one included, meets the coverage
band (beyond sampling error), beats the training report's baselines and a latency ceiling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest

from models.contract import default_contract
from models.intervals import CoverageCheck, wilson_interval
from models.promotion import gate, workflow
from models.promotion.criteria import (
    LATENCY_CEILING_MS,
    AbsoluteCriteria,
    BaselineCheck,
    baseline_checks,
)
from models.promotion.decision import Comparison, ModelScore
from models.promotion.holdout import candidate_holdout, holdout_predictions
from models.promotion.report import comparison_table
from models.promotion.statistics import PairedDifference, RunningMean
from models.store.artifact import load_artifact
from models.store.stages import CANDIDATE, LifecycleError
from models.training.config import TrainingConfig
from models.training.from_files import load_file_training_data
from models.training.release import train_and_register

FAST_LATENCY_CALLS = 200


@pytest.mark.parametrize(("hits", "n"), [(71, 84), (900, 1000), (0, 20), (20, 20), (3, 7)])
def test_wilson_interval_matches_scipy(hits: int, n: int) -> None:
    expected = binomtest(hits, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert wilson_interval(hits, n) == pytest.approx((expected.low, expected.high), abs=1e-9)


def test_wilson_interval_needs_rows() -> None:
    with pytest.raises(ValueError):
        wilson_interval(0, 0)


@pytest.mark.parametrize(
    ("coverage", "rows", "outside", "refuted"),
    [
        (0.897, 31_950, False, False),
        (0.846, 84, True, False),  # the retrain, on a small holdout: flagged only
        (0.846, 421, True, True),  # the same share on 421 orders: beyond sampling error
        (0.93, 300, True, False),  # over-covers, within noise
        (0.97, 1000, True, True),  # far too wide
        (0.88, 50, False, False),  # on the band's edge
    ],
)
def test_coverage_is_refused_only_beyond_sampling_error(
    coverage: float, rows: int, outside: bool, refuted: bool
) -> None:
    check = CoverageCheck(coverage, rows, 0.9)
    assert check.band == (0.88, 0.92)
    assert (check.outside_band, check.refuted) == (outside, refuted)
    low, high = check.ci
    assert low < coverage < high or coverage in (0.0, 1.0)
    described = check.describe()
    assert described.startswith(f"{coverage:.3f} (95 % CI {low:.3f}-{high:.3f} on {rows:,} orders")
    assert ("OUTSIDE the target band beyond sampling error" in described) is refuted
    assert ("within sampling error of it" in described) is (outside and not refuted)


def _difference(values: np.ndarray) -> PairedDifference:
    running = RunningMean()
    running.add(values)
    return PairedDifference.of(running)


def test_the_training_mean_must_be_beaten_beyond_noise_the_linear_one_on_the_point() -> None:
    rng = np.random.default_rng(0)
    noisy_win = _difference(rng.normal(-0.01, 1.0, size=500))  # better, but CI crosses 0
    clear_win = _difference(rng.normal(-2.0, 1.0, size=500))
    assert noisy_win.ci_high is not None and noisy_win.ci_high > 0
    assert not BaselineCheck("training mean", 9.0, 8.99, noisy_win, beyond_noise=True).ok
    assert BaselineCheck("training mean", 9.0, 7.0, clear_win, beyond_noise=True).ok
    assert BaselineCheck("x-only linear", 9.0, 8.99, noisy_win, beyond_noise=False).ok
    # Equal or worse on the point estimate fails whatever the rule.
    assert not BaselineCheck("x-only linear", 9.0, 9.0, noisy_win, beyond_noise=False).ok
    # Recorded MAEs only (a model older than its baseline fits): the point estimate decides.
    assert BaselineCheck("training mean", 9.0, 8.99, None, beyond_noise=True).ok
    # Below MIN_PAIRS_FOR_CI orders no CI is claimed: the point estimate decides.
    few = _difference(rng.normal(-0.5, 1.0, size=10))
    assert few.ci_high is None
    assert BaselineCheck("training mean", 9.0, 8.5, few, beyond_noise=True).ok


def _absolute(
    coverage: float = 0.9, candidate_mae: float = 4.0, p95_ms: float = 0.05
) -> AbsoluteCriteria:
    baselines = [
        BaselineCheck("training mean", 8.0, candidate_mae, None, beyond_noise=True),
        BaselineCheck("distance_km-only linear", 6.0, candidate_mae, None, beyond_noise=False),
    ]
    return AbsoluteCriteria(
        coverage=CoverageCheck(coverage, 2000, 0.9),
        baselines=baselines,
        baseline_source="test",
        p95_ms=p95_ms,
        latency_ceiling_ms=LATENCY_CEILING_MS["tl2cgen"],
    )


def _comparison(absolute: AbsoluteCriteria | None, with_production: bool) -> Comparison:
    score = ModelScore(tag="t", stage=None, mae=4.0, p50_ms=0.02, p95_ms=0.05, latency_calls=200)
    return Comparison(
        candidate=score,
        production=score if with_production else None,
        holdout_rows=2000,
        holdout_source="test",
        latency_runtime="tl2cgen",
        mae_ratio=1.0 if with_production else None,
        p95_ratio=1.0 if with_production else None,
        mae_ok=True,
        latency_ok=True,
        absolute=absolute,
    )


@pytest.mark.parametrize("with_production", [False, True])
@pytest.mark.parametrize(
    ("absolute", "refusal"),
    [
        (_absolute(), None),
        (
            _absolute(coverage=0.85),
            "holdout interval coverage 0.850 outside the target 0.88-0.92 beyond sampling error",
        ),
        (
            _absolute(candidate_mae=7.0),
            "holdout MAE 7.000 not better than the distance_km-only linear baseline's 6.000",
        ),
        (_absolute(p95_ms=1.5), "p95 1-row latency 1.500 ms over the 1 ms ceiling"),
    ],
)
def test_absolute_criteria_refuse_with_or_without_production(
    absolute: AbsoluteCriteria, refusal: str | None, with_production: bool
) -> None:
    """A candidate that misses them is refused even when it matches production: they say whether
    it is fit to serve at all, not whether it beats what it replaces."""
    comparison = _comparison(absolute, with_production)
    table = comparison_table(comparison)
    assert comparison.passed is (refusal is None), table
    if refusal is None:
        assert comparison.decision.startswith("PROMOTE")
        assert ("first promotion" in comparison.decision) is (not with_production)
    else:
        assert comparison.decision == f"REFUSE ({refusal})"
        assert "| FAIL |" in table
    assert "Absolute criteria (every promotion, with or without production)" in table
    assert "| holdout 90% interval coverage | " in table


def test_a_flagged_coverage_passes_and_says_so() -> None:
    comparison = _comparison(_absolute(coverage=0.875), with_production=False)
    assert comparison.passed
    assert "pass (FLAG: outside the band, within sampling error)" in comparison_table(comparison)


def test_without_absolute_criteria_a_first_promotion_is_refused() -> None:
    comparison = _comparison(None, with_production=False)
    assert not comparison.passed
    assert comparison.decision == "REFUSE (absolute criteria not measured)"


def test_the_gate_scores_the_baselines_on_its_holdout_as_training_did(
    store_home: Path, base_tag: str
) -> None:
    """Recomputed from the fits in the metadata, on the candidate's own (regenerated) holdout,
    the baselines score exactly what the training report recorded."""
    artifact = load_artifact(base_tag)
    holdout = candidate_holdout(artifact)
    point = holdout_predictions(artifact, holdout)[:, 0]
    checks, source = baseline_checks(artifact, holdout, point, own_holdout=True)
    assert "fitted at training on the candidate's own training rows" in source
    metrics = artifact.metadata["metrics"]
    assert [c.mae for c in checks] == pytest.approx(
        [metrics["baseline_mean_mae"], metrics["baseline_distance_linear_mae"]], abs=1e-5
    )
    assert all(c.ok and c.difference is not None for c in checks)
    # A model registered before the fits were recorded is held to the recorded MAEs ...
    older = type(artifact)(
        **{
            **vars(artifact),
            "metadata": {k: v for k, v in artifact.metadata.items() if k != "baselines"},
        }
    )
    checks, source = baseline_checks(older, holdout, point, own_holdout=True)
    assert "recorded at training on this same holdout" in source
    assert all(c.difference is None for c in checks)
    # ... which say nothing about another holdout.
    with pytest.raises(LifecycleError, match="records no baselines"):
        baseline_checks(older, holdout, point, own_holdout=False)


@pytest.fixture(scope="module")
def shuffled_tag(store_home: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A candidate trained on an order file whose delivery times are shuffled: it learns nothing."""
    from examples.warehouse_export import order_export

    orders = order_export(6_000, days=20, seed=5)
    target = default_contract().target.column
    orders[target] = np.random.default_rng(0).permutation(orders[target].to_numpy())
    path = tmp_path_factory.mktemp("shuffled") / "orders.parquet"
    orders.to_parquet(path, index=False)
    return train_and_register(
        TrainingConfig.small(), stage=CANDIDATE, data=load_file_training_data(path)
    ).tag


def test_a_first_candidate_that_learned_nothing_is_refused(
    store_home: Path, shuffled_tag: str
) -> None:
    comparison = gate.compare(shuffled_tag, None, latency_calls=FAST_LATENCY_CALLS)
    print("\n" + comparison_table(comparison))
    assert comparison.production is None
    assert comparison.absolute is not None and not comparison.absolute.baselines_ok
    assert not comparison.passed
    assert comparison.decision.startswith(
        "REFUSE (holdout MAE " + f"{comparison.candidate.mae:.3f} not better than the training mean"
    )
    assert isinstance(comparison_table(comparison), str) and pd.notna(comparison.candidate.mae)


def test_promote_labels_a_refused_first_candidate_and_the_next_promote_skips_it(
    store_home: Path, base_tag: str, shuffled_tag: str
) -> None:
    refused = workflow.promote(shuffled_tag, latency_calls=FAST_LATENCY_CALLS)
    assert not refused.promoted and refused.choice is None
    labels = load_artifact(shuffled_tag).labels
    assert labels["gate"] == "refused" and labels["stage"] == CANDIDATE
    assert labels["gate_failed"] == "baselines"
    assert float(labels["gate_holdout_coverage"]) > 0
    # "The candidate" is now the older, untested session model: the refused one is named.
    promoted = workflow.promote(latency_calls=FAST_LATENCY_CALLS)
    print("\n" + promoted.chosen() + "\n" + comparison_table(promoted.comparison))
    assert promoted.promoted and promoted.comparison.candidate.tag == base_tag
    assert promoted.comparison.decision == (
        "PROMOTE (first promotion: no production model yet; absolute criteria passed)"
    )
    assert (
        promoted.chosen()
        .splitlines()[1]
        .startswith(
            f"skipped {shuffled_tag} (gate=refused at {labels['gate_checked_at']}, failed baselines"
        )
    )
    assert load_artifact(base_tag).labels["gate"] == "first"
