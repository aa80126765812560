"""Folding logged blocks into the live comparison, a page at a time: what a block brings
(:class:`ScoredBlock`), the running figures of each (champion, challenger) pair, and the
prediction PSI between the two.

The live compare tool (``make compare``) reads the prediction log and hands its blocks to
:class:`LiveComparisonBuilder`; :meth:`LiveComparisonBuilder.result` gives the
:class:`~models.promotion.live_comparison.LiveComparison`. No I/O here.

**Memory does not grow with the log.** Means, variances and counts are running sums. The two
things that need a sample -- the inference-time percentiles and the prediction-distribution PSI --
use fixed-size uniform reservoirs (Vitter's algorithm R, seeded: the same blocks in the same
order give the same figures). Per (champion, challenger) pair that is at most :data:`POINT_RESERVOIR_ROWS`
x 2 float64 (1.6 MB) for the PSI and 2 x :data:`CALL_RESERVOIR_BLOCKS` x 2 float64 (0.64 MB) for
the latencies, ~2.3 MB; a window holds a handful of pairs. Below the reservoir sizes every row
or block is kept, so small logs are computed exactly.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from models.drift_stats import bin_shares, psi, reference_bins
from models.promotion.live_comparison import (
    PSI_BINS,
    ChampionTotals,
    InferenceLatency,
    LiveComparison,
    PairComparison,
    Role,
    RoleStats,
)
from models.promotion.statistics import PairedDifference, Reservoir, RunningMean

POINT_RESERVOIR_ROWS = 100_000
"""Shadowed rows per pair whose (champion, challenger) point predictions are kept for the PSI. A
uniform sample this large puts the PSI's sampling error near 1e-4 (10 bins), far below the 0.1
that would matter."""
CALL_RESERVOIR_BLOCKS = 20_000
"""Blocks per pair and role whose model call (ms, us per row) is kept for the percentiles."""


class CallTiming(NamedTuple):
    """One model call as the log stores it: its duration (the model alone) and its rows."""

    ms: float
    rows: int


@dataclass(frozen=True)
class ScoredBlock:
    """One logged request as the comparison needs it (decoded by the log reader)."""

    model_version: str
    """The champion: the model whose answers the client got."""
    outputs: np.ndarray
    """(n, 3) champion point, lower, upper."""
    actual: np.ndarray
    """(n,) the label of each row, NaN where none arrived."""
    call: CallTiming | None = None
    """The champion's model call; None in blocks logged before calls were kept."""
    shadow_version: str | None = None
    """The challenger; None when no challenger scored this block."""
    shadow_outputs: np.ndarray | None = None
    """(n, 3) challenger point, lower, upper."""
    shadow_call: CallTiming | None = None


class _PairAccumulator:
    """Running figures of one (champion, challenger) pair."""

    def __init__(self) -> None:
        self.rows_shadowed = 0
        self.champion_error = RunningMean()
        self.challenger_error = RunningMean()
        self.error_difference = RunningMean()
        self.champion_covered = RunningMean()
        self.challenger_covered = RunningMean()
        self.coverage_difference = RunningMean()
        self.points = Reservoir(POINT_RESERVOIR_ROWS, 2, seed=1)
        self.champion_calls = Reservoir(CALL_RESERVOIR_BLOCKS, 2, seed=2)
        self.challenger_calls = Reservoir(CALL_RESERVOIR_BLOCKS, 2, seed=3)

    def add(
        self,
        champion: np.ndarray,
        challenger: np.ndarray,
        actual: np.ndarray,
        champion_calls: list[CallTiming],
        challenger_calls: list[CallTiming],
    ) -> None:
        self.rows_shadowed += len(champion)
        self.points.add(np.column_stack([champion[:, 0], challenger[:, 0]]))
        labelled = ~np.isnan(actual)
        truth, champ, chal = actual[labelled], champion[labelled], challenger[labelled]
        champion_error = np.abs(truth - champ[:, 0])
        challenger_error = np.abs(truth - chal[:, 0])
        champion_covered = ((truth >= champ[:, 1]) & (truth <= champ[:, 2])).astype(np.float64)
        challenger_covered = ((truth >= chal[:, 1]) & (truth <= chal[:, 2])).astype(np.float64)
        self.champion_error.add(champion_error)
        self.challenger_error.add(challenger_error)
        self.error_difference.add(challenger_error - champion_error)
        self.champion_covered.add(champion_covered)
        self.challenger_covered.add(challenger_covered)
        self.coverage_difference.add(challenger_covered - champion_covered)
        self.champion_calls.add(_call_rows(champion_calls))
        self.challenger_calls.add(_call_rows(challenger_calls))

    def result(
        self, champion_version: str, challenger_version: str, totals: ChampionTotals
    ) -> PairComparison:
        labelled = self.champion_error.count
        champion_points, challenger_points = self.points.sample.T
        prediction_psi = None
        if len(champion_points):
            bins = reference_bins(champion_points, n_bins=PSI_BINS)
            prediction_psi = psi(
                bin_shares(challenger_points, bins["inner_edges"]),
                bin_shares(champion_points, bins["inner_edges"]),
            )

        def role(
            name: Role, version: str, error: RunningMean, covered: RunningMean, calls: Reservoir
        ) -> RoleStats:
            return RoleStats(
                role=name,
                model_version=version,
                mae=error.mean if labelled else None,
                coverage=covered.mean if labelled else None,
                latency=_latency(calls),
            )

        return PairComparison(
            champion=role(
                "champion",
                champion_version,
                self.champion_error,
                self.champion_covered,
                self.champion_calls,
            ),
            challenger=role(
                "challenger",
                challenger_version,
                self.challenger_error,
                self.challenger_covered,
                self.challenger_calls,
            ),
            rows_predicted=totals.rows_predicted,
            labelled_rows=totals.labelled_rows,
            rows_shadowed=self.rows_shadowed,
            labelled_shadowed_rows=labelled,
            mae_difference=PairedDifference.of(self.error_difference),
            coverage_difference=PairedDifference.of(self.coverage_difference),
            prediction_psi=prediction_psi,
            psi_rows=len(champion_points),
        )


def _call_rows(calls: list[CallTiming]) -> np.ndarray:
    """Calls as (ms, us per row) rows; a call without rows (never logged) is left out."""
    usable = [(call.ms, call.ms * 1000.0 / call.rows) for call in calls if call.rows > 0]
    return np.asarray(usable, dtype=np.float64).reshape(-1, 2)


def _latency(calls: Reservoir) -> InferenceLatency:
    sample = calls.sample
    if not len(sample):
        return InferenceLatency(calls.seen, None, None, None, None)
    ms_p50, ms_p95 = np.percentile(sample[:, 0], [50, 95]).tolist()
    us_p50, us_p95 = np.percentile(sample[:, 1], [50, 95]).tolist()
    return InferenceLatency(calls.seen, ms_p50, ms_p95, us_p50, us_p95)


class LiveComparisonBuilder:
    """Folds logged blocks into the per-pair figures; :meth:`result` gives the comparison.

    Memory: two counters per champion version, and per (champion, challenger) pair the running
    sums plus the fixed reservoirs (~2.3 MB, see the module docstring) -- never the rows.
    """

    def __init__(self) -> None:
        self._champions: dict[str, list[int]] = {}  # version -> [rows predicted, labelled]
        self._pairs: dict[tuple[str, str], _PairAccumulator] = {}

    def add_blocks(self, blocks: Iterable[ScoredBlock]) -> None:
        """Fold ``blocks`` in. Blocks of one pair are concatenated first, so a page of many
        single-row requests costs a few array operations, not a few per request."""
        grouped: dict[tuple[str, str], list[ScoredBlock]] = {}
        for block in blocks:
            totals = self._champions.setdefault(block.model_version, [0, 0])
            totals[0] += len(block.outputs)
            totals[1] += int(np.count_nonzero(~np.isnan(block.actual)))
            shadow = block.shadow_outputs
            # A challenger's answer that does not cover the block row for row cannot be paired.
            if (
                block.shadow_version is not None
                and shadow is not None
                and shadow.shape == block.outputs.shape
            ):
                grouped.setdefault((block.model_version, block.shadow_version), []).append(block)
        for pair, members in grouped.items():
            accumulator = self._pairs.get(pair)
            if accumulator is None:
                accumulator = self._pairs[pair] = _PairAccumulator()
            accumulator.add(
                np.concatenate([b.outputs for b in members]),
                np.concatenate([b.shadow_outputs for b in members if b.shadow_outputs is not None]),
                np.concatenate([b.actual for b in members]),
                [b.call for b in members if b.call is not None],
                [b.shadow_call for b in members if b.shadow_call is not None],
            )

    def result(self, window_hours: float | None, source: str) -> LiveComparison:
        """The comparison of everything folded in so far."""
        champions = {
            version: ChampionTotals(rows, labelled)
            for version, (rows, labelled) in sorted(self._champions.items())
        }
        pairs = [
            accumulator.result(champion, challenger, champions[champion])
            for (champion, challenger), accumulator in sorted(self._pairs.items())
        ]
        return LiveComparison(window_hours, source, champions, pairs)

    @property
    def sample_bytes(self) -> int:
        """Memory held by the reservoirs: constant per pair, whatever was folded in."""
        return sum(
            a.points.nbytes + a.champion_calls.nbytes + a.challenger_calls.nbytes
            for a in self._pairs.values()
        )
