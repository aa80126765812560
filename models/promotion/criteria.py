"""What the gate holds a candidate to: the thresholds against production, and the absolute
criteria every promoted model meets -- interval coverage, the baselines of its training report,
and a latency ceiling per runtime (``models.promotion.gate`` has the whole rule in words).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from models.features import TARGET, training_frame
from models.intervals import CoverageCheck
from models.promotion.statistics import MIN_PAIRS_FOR_CI, PairedDifference, RunningMean
from models.store.artifact import ModelArtifact
from models.store.stages import LifecycleError
from models.training.fit import linear_baseline

MAE_TOLERANCE = 1.02
"""A candidate may be at most 2 % worse than production on holdout MAE."""
LATENCY_TOLERANCE = 1.5
"""A candidate's p95 single-row latency may be at most 1.5x production's."""
LATENCY_CEILING_MS: dict[str, float] = {"tl2cgen": 1.0, "treelite": 2.0, "sklearn": 10.0}
"""Absolute p95 single-row latency ceiling (ms) per runtime, applied to every candidate. Measured
with this gate (1,000 interleaved calls, 2-core machine, load ~2) on the 40k- and 400k-order
synthetic models: p95 0.023-0.025 ms through tl2cgen, 0.19-0.22 ms through Treelite, 2.4-3.0 ms
through scikit-learn. The ceilings leave 40x, 9x and 3x margin for jitter and bigger models, and
even the slowest (10 ms) is a twentieth of the service's 200 ms p95 SLO (``loadtest/slo.py``):
they refuse a model pathologically slower than what this code trains, not a slightly bigger one
(the relative ``LATENCY_TOLERANCE`` does that against production)."""


@dataclass(frozen=True)
class BaselineCheck:
    """The candidate's holdout MAE against one baseline of its training report."""

    name: str
    """``training mean`` or ``<field>-only linear``."""
    mae: float
    """The baseline's MAE on the gate's holdout."""
    candidate_mae: float
    difference: PairedDifference | None
    """Candidate - baseline absolute error, per order, with its 95 % CI; None when only the
    recorded MAEs are known (a model registered before its baseline fits were recorded)."""
    beyond_noise: bool
    """The candidate must be better beyond sampling error (the CI's upper end below 0), not
    only on the point estimate: required against the training mean."""

    @property
    def ok(self) -> bool:
        if not self.candidate_mae < self.mae:
            return False
        if (
            self.beyond_noise
            and self.difference is not None
            and self.difference.ci_high is not None
        ):
            return self.difference.ci_high < 0
        return True

    @property
    def rule(self) -> str:
        if (
            self.beyond_noise
            and self.difference is not None
            and self.difference.ci_high is not None
        ):
            return "< baseline, 95 % CI < 0"
        return "< baseline"

    def describe(self) -> str:
        """The per-order difference and its CI, in words."""
        diff = self.difference
        if diff is None or diff.mean is None:
            return f"{self.name}: MAE {self.mae:.3f} recorded at training on this holdout"
        text = f"{self.name}: candidate - baseline absolute error {diff.mean:+.3f} min per order"
        if diff.ci_low is None or diff.ci_high is None:
            return f"{text} (no CI below {MIN_PAIRS_FOR_CI} orders: the point estimate decides)"
        return f"{text}, 95 % CI [{diff.ci_low:+.3f}, {diff.ci_high:+.3f}]"


def baseline_checks(
    candidate: ModelArtifact,
    holdout: pd.DataFrame,
    candidate_point: np.ndarray,
    own_holdout: bool,
) -> tuple[list[BaselineCheck], str]:
    """The candidate against its training-mean and one-field linear baselines on ``holdout``,
    and where the baselines come from (see ``models.promotion.gate``)."""
    actual = holdout[TARGET].to_numpy()
    candidate_errors = np.abs(actual - candidate_point)
    candidate_mae = float(candidate_errors.mean())
    field_name, metric = linear_baseline(candidate.contract)
    fits = candidate.metadata.get("baselines")
    if isinstance(fits, dict) and "training_mean" in fits and isinstance(fits.get("linear"), dict):
        linear = fits["linear"]
        inputs = training_frame(holdout, candidate.contract, candidate.entities)
        predictions = {
            "training mean": np.full(actual.shape, float(fits["training_mean"])),
            f"{linear['field']}-only linear": float(linear["intercept"])
            + float(linear["slope"]) * inputs[linear["field"]].to_numpy(dtype=float),
        }
        checks = []
        for name, predicted in predictions.items():
            errors = np.abs(actual - predicted)
            differences = RunningMean()
            differences.add(candidate_errors - errors)
            checks.append(
                BaselineCheck(
                    name=name,
                    mae=float(errors.mean()),
                    candidate_mae=candidate_mae,
                    difference=PairedDifference.of(differences),
                    beyond_noise=name == "training mean",
                )
            )
        return checks, (
            "fitted at training on the candidate's own training rows (its metadata), scored "
            "here on this holdout, order by order beside the candidate"
        )
    metrics = candidate.metadata.get("metrics", {})
    if not own_holdout or "baseline_mean_mae" not in metrics or metric not in metrics:
        raise LifecycleError(
            f"{candidate.tag} records no baselines to hold it to on this holdout; retrain it"
        )
    checks = [
        BaselineCheck(name, float(metrics[key]), candidate_mae, None, beyond_noise=False)
        for name, key in (
            ("training mean", "baseline_mean_mae"),
            (f"{field_name}-only linear", metric),
        )
    ]
    return checks, (
        "MAEs recorded at training on this same holdout (the model predates recorded baseline "
        "fits: no per-order comparison)"
    )


@dataclass(frozen=True)
class AbsoluteCriteria:
    """What every promoted model must meet, with or without a production model to beat."""

    coverage: CoverageCheck
    baselines: list[BaselineCheck]
    baseline_source: str
    p95_ms: float
    latency_ceiling_ms: float

    @property
    def coverage_ok(self) -> bool:
        """Refused only when the holdout shows the band missed beyond sampling error."""
        return not self.coverage.refuted

    @property
    def baselines_ok(self) -> bool:
        return all(b.ok for b in self.baselines)

    @property
    def latency_ok(self) -> bool:
        return self.p95_ms <= self.latency_ceiling_ms

    @property
    def passed(self) -> bool:
        return self.coverage_ok and self.baselines_ok and self.latency_ok

    def failures(self) -> list[str]:
        """Why the criteria refuse the candidate, one reason each; [] when they pass."""
        reasons = []
        if not self.coverage_ok:
            low, high = self.coverage.band
            reasons.append(
                f"holdout interval coverage {self.coverage.coverage:.3f} outside the target "
                f"{low:.2f}-{high:.2f} beyond sampling error"
            )
        for baseline in self.baselines:
            if not baseline.ok:
                reasons.append(
                    f"holdout MAE {baseline.candidate_mae:.3f} not better than the "
                    f"{baseline.name} baseline's {baseline.mae:.3f}"
                    + (" beyond sampling error" if baseline.candidate_mae < baseline.mae else "")
                )
        if not self.latency_ok:
            reasons.append(
                f"p95 1-row latency {self.p95_ms:.3f} ms over the {self.latency_ceiling_ms:g} ms "
                "ceiling"
            )
        return reasons

    def failed_checks(self) -> list[str]:
        """Short names of the failed checks (the ``gate_failed`` label)."""
        names = [("coverage", self.coverage_ok), ("baselines", self.baselines_ok)]
        return [n for n, ok in (*names, ("latency-ceiling", self.latency_ok)) if not ok]
