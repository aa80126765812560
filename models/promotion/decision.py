"""The gate's decision: each model's scores on the shared holdout, the live shadow evidence,
and :class:`Comparison`, which says whether the candidate passes, on what evidence, and why not.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from models.contract.compat import Compatibility
from models.promotion.criteria import MAE_TOLERANCE, AbsoluteCriteria
from models.promotion.live_comparison import PairComparison


@dataclass(frozen=True)
class ModelScore:
    """One model's results on the shared holdout."""

    tag: str
    stage: str | None
    mae: float | None
    """None when the holdout lacks a field of this model's contract (only production, when the
    candidate removed a field and the break was allowed)."""
    p50_ms: float
    p95_ms: float
    latency_calls: int
    coverage: float | None = None
    """Holdout interval coverage (None when not measured, like ``mae``)."""


@dataclass(frozen=True)
class LiveEvidence:
    """What the prediction log says about the candidate as production's challenger."""

    required_rows: int
    """Labelled shadow rows the gate asks for (``--min-shadow-rows``)."""
    window: str
    """Which blocks of which log were read, in words."""
    pair: PairComparison | None
    """Production as champion, the candidate as challenger; None if the log has no such rows."""

    @property
    def rows(self) -> int:
        """Labelled rows both models scored."""
        return 0 if self.pair is None else self.pair.labelled_shadowed_rows

    @property
    def enough_rows(self) -> bool:
        """At least :attr:`required_rows` labelled shadow rows."""
        return self.rows >= self.required_rows

    @property
    def mae_ok(self) -> bool:
        """Enough rows, and the candidate's live MAE within ``MAE_TOLERANCE`` x production's."""
        if not self.enough_rows or self.pair is None:
            return False
        champion, challenger = self.pair.champion.mae, self.pair.challenger.mae
        if champion is None or challenger is None:
            return False
        return challenger <= MAE_TOLERANCE * champion

    def too_few_rows(self) -> str | None:
        """Why the rows do not suffice, naming both numbers; None when they do."""
        if self.enough_rows:
            return None
        return (
            f"too few live shadow rows: {self.rows} labelled rows where the candidate was the "
            f"challenger of production, --min-shadow-rows requires {self.required_rows}"
        )


@dataclass(frozen=True)
class Comparison:
    """Candidate vs production on the same holdout, and the gate's decision."""

    candidate: ModelScore
    production: ModelScore | None
    holdout_rows: int
    holdout_source: str
    latency_runtime: str
    mae_ratio: float | None
    p95_ratio: float | None
    mae_ok: bool
    latency_ok: bool
    notes: list[str] = field(default_factory=list)
    live: LiveEvidence | None = None
    """The live shadow evidence, when the gate was asked for it (and there is a production)."""
    contract: Compatibility | None = None
    """The candidate's contract against production's (None: no production)."""
    api_break_allowed: bool = False
    """The caller allowed a contract that breaks production's API (``--allow-api-break``)."""
    absolute: AbsoluteCriteria | None = None
    """The absolute criteria; :func:`compare` always measures them. Without them (a comparison
    built by hand) only a comparison with production can pass."""

    @property
    def contract_ok(self) -> bool:
        """No API break, or one the caller allowed."""
        return self.contract is None or self.contract.compatible or self.api_break_allowed

    @property
    def absolute_ok(self) -> bool:
        if self.absolute is None:
            return self.production is not None
        return self.absolute.passed

    @property
    def passed(self) -> bool:
        """Promote? The absolute criteria always; against production, its checks too."""
        if self.production is None:
            return self.absolute_ok
        live_ok = self.live is None or self.live.mae_ok
        return self.absolute_ok and self.mae_ok and self.latency_ok and live_ok and self.contract_ok

    @property
    def evidence(self) -> str:
        """Which evidence the decision rests on."""
        if self.production is None:
            return (
                f"absolute criteria on the holdout ({self.holdout_rows} orders); no production "
                "model to compare with (first promotion)"
            )
        holdout = f"holdout MAE and p95 latency ({self.holdout_rows} orders)"
        if self.absolute is not None:
            holdout = f"absolute criteria, {holdout}"
        if self.live is None:
            return holdout
        return f"{holdout} and live shadow MAE ({self.live.rows} labelled rows)"

    @property
    def decision(self) -> str:
        if self.production is None and self.passed:
            return "PROMOTE (first promotion: no production model yet; absolute criteria passed)"
        if self.passed and self.live is None:
            return "PROMOTE (gate passed)"
        if self.passed:
            return "PROMOTE (gate passed on the holdout and on live shadow evidence)"
        reasons = [] if self.absolute is None else self.absolute.failures()
        if self.absolute is None and self.production is None:
            reasons.append("absolute criteria not measured")
        if self.production is None:
            return f"REFUSE ({'; '.join(reasons)})"
        checks = [("MAE", self.mae_ok), ("p95 latency", self.latency_ok)]
        if self.live is not None and self.live.enough_rows:
            checks.append(("live shadow MAE", self.live.mae_ok))
        if not self.contract_ok and self.contract is not None:
            reasons.append(
                f"API break in {', '.join(self.contract.broken_fields)}: its contract would "
                "refuse requests production accepts (--allow-api-break, make promote "
                "ALLOW_API_BREAK=1, to promote anyway)"
            )
        failed = [name for name, ok in checks if not ok]
        if failed:
            reasons.append(f"{' and '.join(failed)} over the gate")
        too_few = None if self.live is None else self.live.too_few_rows()
        if too_few is not None:
            reasons.append(too_few)
        return f"REFUSE ({'; '.join(reasons)})"
