"""The gate's report for people: the markdown table of candidate against production, the
absolute criteria, the contract comparison and the live evidence, then the decision.
"""

from __future__ import annotations

from models.contract.compat import Compatibility
from models.promotion.criteria import LATENCY_TOLERANCE, MAE_TOLERANCE, AbsoluteCriteria
from models.promotion.decision import Comparison, LiveEvidence, ModelScore
from models.promotion.statistics import CONFIDENCE_Z, MIN_PAIRS_FOR_CI


def comparison_table(comparison: Comparison) -> str:
    """Markdown comparison table plus the decision."""
    c, p = comparison.candidate, comparison.production

    def cell(value: float | None, digits: int) -> str:
        return "—" if value is None else f"{value:.{digits}f}"

    def verdict(ok: bool) -> str:
        return "—" if p is None else ("pass" if ok else "FAIL")

    lines = [
        f"Holdout: {comparison.holdout_source}, {comparison.holdout_rows} orders; "
        f"latency: {c.latency_calls} interleaved 1-row predict_rows calls per model "
        f"({comparison.latency_runtime} runtime, as served)",
        "",
        "| | candidate | production | ratio | gate | result |",
        "|---|---|---|---|---|---|",
        f"| tag | {c.tag} | {p.tag if p else '(none)'} | | | |",
        f"| holdout MAE (min) | {cell(c.mae, 4)} | {cell(p.mae if p else None, 4)} | "
        f"{cell(comparison.mae_ratio, 3)} | <= {MAE_TOLERANCE:.2f} | {verdict(comparison.mae_ok)} |",
        f"| p95 1-row latency (ms) | {c.p95_ms:.3f} | {cell(p.p95_ms if p else None, 3)} | "
        f"{cell(comparison.p95_ratio, 3)} | <= {LATENCY_TOLERANCE:.2f} | {verdict(comparison.latency_ok)} |",
        f"| p50 1-row latency (ms) | {c.p50_ms:.3f} | {cell(p.p50_ms if p else None, 3)} | | | |",
    ]
    if comparison.absolute is not None:
        # Right under the tags: the criteria every promotion meets, then those against
        # production.
        lines[5:5] = _absolute_rows(comparison.absolute, p)
        lines[1:1] = _absolute_summary(comparison.absolute)
    if comparison.live is not None:
        lines[1:1] = [_live_summary(comparison.live)]
        lines += _live_rows(comparison.live)
    if comparison.contract is not None:
        lines += ["", _contract_summary(comparison.contract, comparison.api_break_allowed)]
        lines += [f"  {line}" for line in comparison.contract.lines()]
    lines += ["", f"Evidence: {comparison.evidence}", f"Decision: {comparison.decision}"]
    lines += [f"Note: {note}" for note in comparison.notes]
    return "\n".join(lines)


def _absolute_summary(absolute: AbsoluteCriteria) -> list[str]:
    """The absolute criteria's evidence in words: coverage with its CI, the baselines."""
    lines = [
        "Absolute criteria (every promotion, with or without production): interval "
        f"coverage {absolute.coverage.describe()}",
        f"Baselines: {absolute.baseline_source}",
    ]
    lines += [f"  {b.describe()}" for b in absolute.baselines]
    return lines


def _absolute_rows(absolute: AbsoluteCriteria, production: ModelScore | None) -> list[str]:
    """The table rows of the absolute criteria: coverage, each baseline, latency ceiling."""
    coverage = absolute.coverage
    (low, high), (ci_low, ci_high) = coverage.band, coverage.ci
    if coverage.refuted:
        coverage_verdict = "FAIL"
    elif coverage.outside_band:
        coverage_verdict = "pass (FLAG: outside the band, within sampling error)"
    else:
        coverage_verdict = "pass"
    prod_coverage = (
        "—" if production is None or production.coverage is None else (f"{production.coverage:.3f}")
    )
    lines = [
        f"| holdout {coverage.level:.0%} interval coverage | {coverage.coverage:.3f} "
        f"(95 % CI {ci_low:.3f}-{ci_high:.3f}) | {prod_coverage} | | CI meets "
        f"{low:.2f}-{high:.2f} | {coverage_verdict} |"
    ]
    for b in absolute.baselines:
        lines.append(
            f"| holdout MAE vs {b.name} baseline (min) | {b.candidate_mae:.4f} | "
            f"baseline {b.mae:.4f} | {b.candidate_mae / b.mae:.3f} | {b.rule} | "
            f"{'pass' if b.ok else 'FAIL'} |"
        )
    lines.append(
        f"| p95 1-row latency ceiling (ms) | {absolute.p95_ms:.3f} | | | "
        f"<= {absolute.latency_ceiling_ms:g} | {'pass' if absolute.latency_ok else 'FAIL'} |"
    )
    return lines


def _contract_summary(contract: Compatibility, api_break_allowed: bool) -> str:
    """The contract comparison in one line (its changes follow, one per line)."""
    if not contract.changes:
        return "Contract: the same API as production"
    if contract.compatible:
        return "Contract: widens production's API (every request of today stays valid)"
    verdict = "allowed (--allow-api-break)" if api_break_allowed else "FAIL"
    return f"Contract: breaks production's API -- {verdict}"


def _live_summary(live: LiveEvidence) -> str:
    """Where the live evidence comes from, and the paired MAE difference with its CI."""
    text = f"Live shadow: {live.window}; candidate as challenger of production"
    difference = None if live.pair is None else live.pair.mae_difference
    if difference is None or difference.mean is None:
        return f"{text}: no labelled rows"
    text += f": MAE difference (candidate - production) {difference.mean:+.3f} min"
    if difference.ci_low is None or difference.ci_high is None:
        return f"{text} (no confidence interval below {MIN_PAIRS_FOR_CI} rows)"
    return (
        f"{text}, 95 % CI [{difference.ci_low:+.3f}, {difference.ci_high:+.3f}] (normal "
        f"approximation on the {difference.pairs} paired rows: mean +- {CONFIDENCE_Z:.2f} "
        "s/sqrt(n))"
    )


def _live_rows(live: LiveEvidence) -> list[str]:
    """The live shadow rows of the table: row count, then the MAEs on those rows."""
    lines = [
        f"| live shadow labelled rows | {live.rows} | | | >= {live.required_rows} | "
        f"{'pass' if live.enough_rows else 'FAIL'} |"
    ]
    pair = live.pair
    if pair is None or pair.challenger.mae is None or pair.champion.mae is None:
        return lines
    ratio = "—" if pair.mae_ratio is None else f"{pair.mae_ratio:.3f}"
    # Below the row count the MAEs are shown but not judged: too few rows decided already.
    mae_verdict = ("pass" if live.mae_ok else "FAIL") if live.enough_rows else "—"
    lines.append(
        f"| live shadow MAE (min) | {pair.challenger.mae:.4f} | {pair.champion.mae:.4f} | "
        f"{ratio} | <= {MAE_TOLERANCE:.2f} | {mae_verdict} |"
    )
    return lines
