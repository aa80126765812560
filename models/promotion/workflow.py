"""Promote a candidate through the gate, or roll production back to the model it replaced."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import bentoml
import pandas as pd

from models.promotion.decision import Comparison
from models.promotion.gate import compare
from models.promotion.latency import LATENCY_CALLS
from models.promotion.live_comparison import LiveComparison
from models.settings import ModelRuntime
from models.store.stages import (
    PREVIOUS,
    PRODUCTION,
    REFUSED,
    ROLLED_BACK,
    STAGE,
    CandidateChoice,
    LifecycleError,
    current_production,
    find_by_stage,
    list_models,
    newest_candidate,
    now_label,
    set_labels,
    store_lock,
)


@dataclass(frozen=True)
class StageChange:
    tag: str
    old_stage: str | None
    new_stage: str


@dataclass(frozen=True)
class PromotionResult:
    """What ``promote`` decided and which labels it changed."""

    promoted: bool
    comparison: Comparison
    changes: list[StageChange]
    choice: CandidateChoice | None = None
    """How the candidate was chosen when no tag was named (None: the caller named it)."""

    def chosen(self) -> str:
        """Which candidate was gated and why: named, or "the candidate" and what it skipped."""
        if self.choice is None:
            return f"candidate {self.comparison.candidate.tag}: named by the caller (--tag / TAG=)"
        return self.choice.describe()

    def summary(self) -> str:
        if not self.promoted:
            return (
                f"{self.comparison.candidate.tag} refused; production unchanged "
                f"({self.comparison.production.tag if self.comparison.production else 'none'})"
            )
        return "; ".join(f"{c.tag}: {c.old_stage} -> {c.new_stage}" for c in self.changes)


def _gate_labels(comparison: Comparison) -> dict[str, str]:
    passed = "first" if comparison.production is None else "passed"
    labels = {
        "gate": passed if comparison.passed else REFUSED,
        "gate_checked_at": now_label(),
        "gate_holdout_mae": f"{comparison.candidate.mae:.4f}",
    }
    absolute = comparison.absolute
    if absolute is not None:
        labels["gate_holdout_coverage"] = f"{absolute.coverage.coverage:.4f}"
    failed = [] if absolute is None else absolute.failed_checks()
    if comparison.production is not None:
        failed += [
            n
            for n, ok in (("mae", comparison.mae_ok), ("latency", comparison.latency_ok))
            if not ok
        ]
        if comparison.live is not None and not comparison.live.mae_ok:
            failed.append("live-shadow")
        if not comparison.contract_ok:
            failed.append("api-break")
    # Which checks refused it, for the "skipped ..." line of the next promote or shadow.
    labels["gate_failed"] = ",".join(failed)
    if comparison.production is not None:
        labels["gate_compared_with"] = comparison.production.tag
        if comparison.mae_ratio is not None:
            labels["gate_mae_ratio"] = f"{comparison.mae_ratio:.4f}"
        labels["gate_p95_ratio"] = f"{comparison.p95_ratio:.4f}"
    contract = comparison.contract
    if contract is not None:
        # same | widened | break | break-allowed: the API change this promotion made.
        labels["gate_contract"] = (
            "same"
            if not contract.changes
            else "widened"
            if contract.compatible
            else ("break-allowed" if comparison.api_break_allowed else "break")
        )
    live = comparison.live
    if live is not None:
        labels["gate_live_rows"] = str(live.rows)
        if live.pair is not None and live.pair.mae_ratio is not None:
            labels["gate_live_mae_ratio"] = f"{live.pair.mae_ratio:.4f}"
    return labels


def promote(
    candidate_tag: str | None = None,
    *,
    latency_calls: int = LATENCY_CALLS,
    holdout: pd.DataFrame | None = None,
    runtime: ModelRuntime = "tl2cgen",
    min_shadow_rows: int | None = None,
    read_live: Callable[[], LiveComparison] | None = None,
    allow_api_break: bool = False,
) -> PromotionResult:
    """Compare a candidate with production and, if the gate passes, make it production.

    ``candidate_tag`` defaults to "the candidate" (``models.store.stages.newest_candidate``: the
    newest ``stage=candidate`` model the gate has not refused -- the one a
    ``DELIVERY_ETA_SHADOW_MODEL_TAG=candidate`` shadow scores); the result names the newer
    refused ones it skipped. Name a refused one explicitly to retry it. The gate's absolute
    criteria apply with or without a production model. The replaced production
    model becomes ``previous`` (kept, so :func:`rollback` can restore it). A refused candidate
    keeps ``stage=candidate`` and gets ``gate=refused`` plus the ratios that refused it.

    With ``min_shadow_rows`` the gate also asks the prediction log for live evidence:
    ``read_live`` returns its comparison (``compare_live`` of the service's log), read once the
    candidate and production are known; see :func:`models.promotion.gate.compare`.

    A candidate whose contract breaks production's API (``models.contract.compat``) is refused
    unless ``allow_api_break``.
    """
    if (min_shadow_rows is None) != (read_live is None):
        raise ValueError("min_shadow_rows and read_live go together")
    with store_lock():
        choice = None
        if candidate_tag is None:
            choice = newest_candidate()
            candidate_tag = choice.tag
        candidate_tag = str(bentoml.models.get(candidate_tag).tag)
        stage = bentoml.models.get(candidate_tag).info.labels.get(STAGE)
        if stage == PRODUCTION:
            raise LifecycleError(f"{candidate_tag} is already the production model")
        production = current_production()
        comparison = compare(
            candidate_tag,
            production.tag if production else None,
            holdout,
            latency_calls=latency_calls,
            runtime=runtime,
            min_shadow_rows=min_shadow_rows,
            live=None if read_live is None else read_live(),
            allow_api_break=allow_api_break,
        )
        gate = _gate_labels(comparison)
        if not comparison.passed:
            set_labels(candidate_tag, gate)
            return PromotionResult(promoted=False, comparison=comparison, changes=[], choice=choice)

        now = now_label()
        changes: list[StageChange] = []
        for old in find_by_stage(PRODUCTION):
            set_labels(old.tag, {STAGE: PREVIOUS, "demoted_at": now})
            changes.append(StageChange(old.tag, PRODUCTION, PREVIOUS))
        seq = 1 + max((int(m.labels.get("promotion_seq", "0")) for m in list_models()), default=0)
        set_labels(
            candidate_tag,
            {**gate, STAGE: PRODUCTION, "promoted_at": now, "promotion_seq": str(seq)},
        )
        changes.insert(0, StageChange(candidate_tag, stage, PRODUCTION))
        return PromotionResult(promoted=True, comparison=comparison, changes=changes, choice=choice)


@dataclass(frozen=True)
class RollbackResult:
    restored: str
    demoted: str | None

    def summary(self) -> str:
        return (
            f"{self.restored}: previous -> production; {self.demoted}: production -> {ROLLED_BACK}"
        )


def rollback() -> RollbackResult:
    """Make the most recently replaced production model production again.

    The current production model becomes ``rolled_back`` (never a rollback target again); older
    ``previous`` models stay, so repeated rollbacks walk further back in history.
    """
    with store_lock():
        previous = find_by_stage(PREVIOUS)
        if not previous:
            raise LifecycleError("no previous production model to roll back to")
        target = previous[0]
        now = now_label()
        current = current_production()
        for old in find_by_stage(PRODUCTION):
            set_labels(old.tag, {STAGE: ROLLED_BACK, "rolled_back_at": now})
        set_labels(target.tag, {STAGE: PRODUCTION, "restored_at": now})
        return RollbackResult(restored=target.tag, demoted=current.tag if current else None)
