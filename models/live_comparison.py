"""Champion vs challenger on the same live requests: paired statistics, computed as a stream.

With a challenger configured (``DELIVERY_ETA_SHADOW_MODEL_TAG``), the service has it score a share
of the requests beside the champion, off the response path, and the prediction log keeps both
answers with the block (``prediction_log.records``). A label sent later scores
both models on the same order, so the comparison is **paired**: per labelled row the difference
``|error of the challenger| - |error of the champion|``, whose mean is the MAE difference, and
likewise for interval coverage. That removes the order-to-order variance two unpaired MAEs
would carry.

This module is the arithmetic alone (no I/O): ``operations.compare_live`` reads the log and
hands its blocks to :class:`LiveComparisonBuilder` a page at a time; the promotion
gate (``models.promotion.gate``) reads the :class:`PairComparison` of its candidate.

**Memory does not grow with the log.** Means, variances and counts are running sums. The two
things that need a sample -- the inference-time percentiles and the prediction-distribution PSI --
use fixed-size uniform reservoirs (Vitter's algorithm R, seeded: the same blocks in the same
order give the same figures). Per (champion, challenger) pair that is at most :data:`POINT_RESERVOIR_ROWS`
x 2 float64 (1.6 MB) for the PSI and 2 x :data:`CALL_RESERVOIR_BLOCKS` x 2 float64 (0.64 MB) for
the latencies, ~2.3 MB; a window holds a handful of pairs. Below the reservoir sizes every row
or block is kept, so small logs are computed exactly.

**Confidence intervals**: normal approximation on the paired per-row differences, mean +- 1.96
sample standard deviations / sqrt(n). Not given (and no significance claimed) below
:data:`MIN_PAIRS_FOR_CI` pairs, where the normal approximation of a mean of skewed errors is
not trustworthy.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, NamedTuple

import numpy as np

from models.drift_stats import bin_shares, psi, reference_bins

CONFIDENCE_Z = 1.959963984540054
"""Two-sided 95 % quantile of the standard normal."""
MIN_PAIRS_FOR_CI = 30
"""Fewest labelled shadowed rows for which a confidence interval (and so a significance claim)
is given."""
POINT_RESERVOIR_ROWS = 100_000
"""Shadowed rows per pair whose (champion, challenger) point predictions are kept for the PSI. A
uniform sample this large puts the PSI's sampling error near 1e-4 (10 bins), far below the 0.1
that would matter."""
CALL_RESERVOIR_BLOCKS = 20_000
"""Blocks per pair and role whose model call (ms, us per row) is kept for the percentiles."""
PSI_BINS = 10
"""Bins of the prediction PSI: deciles of the champion's point predictions."""
NOMINAL_COVERAGE = 0.90
"""The intervals' nominal coverage (``models.model.DeliveryTimeModel.interval_level``)."""
CI_METHOD = (
    "normal approximation on the paired per-row differences (mean +- 1.96 s / sqrt(n)); "
    f"not claimed below {MIN_PAIRS_FOR_CI} pairs"
)

Role = Literal["champion", "challenger"]


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


class RunningMean:
    """Count, mean and variance of a stream of numbers in O(1) memory (batches are merged with
    Chan et al.'s pairwise update, which stays accurate where sum-of-squares would cancel)."""

    def __init__(self) -> None:
        self.count = 0
        self.mean = 0.0
        self._squared_deviations = 0.0

    def add(self, values: np.ndarray) -> None:
        """Fold ``values`` (1-D) into the running figures."""
        n = int(values.size)
        if n == 0:
            return
        batch_mean = float(values.mean())
        batch_squared = float(np.sum((values - batch_mean) ** 2))
        total = self.count + n
        delta = batch_mean - self.mean
        self.mean += delta * n / total
        self._squared_deviations += batch_squared + delta * delta * self.count * n / total
        self.count = total

    @property
    def sample_variance(self) -> float:
        """Variance with Bessel's correction (0 for fewer than two values)."""
        if self.count < 2:
            return 0.0
        return max(self._squared_deviations / (self.count - 1), 0.0)


class Reservoir:
    """A uniform sample of at most ``capacity`` rows (``width`` floats each) of a stream:
    algorithm R, vectorised per batch, with a seeded generator."""

    def __init__(self, capacity: int, width: int, seed: int = 0) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.capacity = capacity
        self.seen = 0
        self._sample = np.empty((capacity, width), dtype=np.float64)
        self._rng = np.random.default_rng(seed)

    def add(self, rows: np.ndarray) -> None:
        """Offer every row of ``rows`` (shape (n, width)) to the sample."""
        n = len(rows)
        if n == 0:
            return
        filled = min(self.seen, self.capacity)
        take = min(self.capacity - filled, n)
        self._sample[filled : filled + take] = rows[:take]
        rest = rows[take:]
        if len(rest):
            # The item with 0-based stream index i replaces a uniform slot of [0, i] if that slot
            # is inside the sample: kept with probability capacity / (i + 1), as in algorithm R.
            index = np.arange(self.seen + take, self.seen + n)
            slots = self._rng.integers(0, index + 1)
            kept = slots < self.capacity
            slots, candidates = slots[kept], rest[kept]
            # Sequentially a later item overwrites an earlier one in the same slot: keep the last
            # (numpy's assignment with repeated indices does not promise which one wins).
            last_first = slots[::-1]
            unique_slots, position = np.unique(last_first, return_index=True)
            self._sample[unique_slots] = candidates[::-1][position]
        self.seen += n

    @property
    def sample(self) -> np.ndarray:
        """The rows kept (all of them while fewer than ``capacity`` were offered)."""
        return self._sample[: min(self.seen, self.capacity)]

    @property
    def nbytes(self) -> int:
        """Memory the sample holds, whatever the stream's length."""
        return int(self._sample.nbytes)


@dataclass(frozen=True)
class PairedDifference:
    """The mean of per-row differences (challenger - champion) and its 95 % confidence interval."""

    pairs: int
    mean: float | None
    """None without pairs."""
    ci_low: float | None
    """None below :data:`MIN_PAIRS_FOR_CI` pairs."""
    ci_high: float | None

    @classmethod
    def of(cls, differences: RunningMean) -> PairedDifference:
        """The difference and interval of a stream of paired differences (see :data:`CI_METHOD`)."""
        n = differences.count
        if n == 0:
            return cls(0, None, None, None)
        if n < MIN_PAIRS_FOR_CI:
            return cls(n, differences.mean, None, None)
        half_width = CONFIDENCE_Z * math.sqrt(differences.sample_variance / n)
        return cls(
            n, differences.mean, differences.mean - half_width, differences.mean + half_width
        )

    @property
    def significant(self) -> bool | None:
        """Whether the interval excludes 0; None when no interval is claimed."""
        if self.ci_low is None or self.ci_high is None:
            return None
        return self.ci_low > 0 or self.ci_high < 0


@dataclass(frozen=True)
class InferenceLatency:
    """Percentiles of one model's calls over the blocks it scored, one sample per block (a call
    that scored several requests counts once for each): ms per call and us per row."""

    blocks: int
    """Blocks with a stored call (the percentiles' sample is at most
    :data:`CALL_RESERVOIR_BLOCKS` of them)."""
    ms_p50: float | None
    ms_p95: float | None
    us_per_row_p50: float | None
    us_per_row_p95: float | None


@dataclass(frozen=True)
class RoleStats:
    """One model's live figures over the pair's labelled shadowed rows (the same rows for both)."""

    role: Role
    model_version: str
    mae: float | None
    """Mean absolute error (minutes); None without labelled shadowed rows."""
    coverage: float | None
    """Share of labels inside the model's interval (nominal :data:`NOMINAL_COVERAGE`)."""
    latency: InferenceLatency


@dataclass(frozen=True)
class ChampionTotals:
    """Everything one champion version predicted in the window, shadowed or not."""

    rows_predicted: int
    labelled_rows: int


@dataclass(frozen=True)
class PairComparison:
    """A champion and a challenger on the live rows both scored."""

    champion: RoleStats
    challenger: RoleStats
    rows_predicted: int
    """Rows the champion predicted in the window (every block, shadowed or not)."""
    labelled_rows: int
    """Of those, rows that received a label."""
    rows_shadowed: int
    """Rows this challenger also scored."""
    labelled_shadowed_rows: int
    """Rows both scored and that received a label: the pairs behind the MAE and coverage."""
    mae_difference: PairedDifference
    """Challenger MAE - champion MAE (minutes): positive means the challenger is worse."""
    coverage_difference: PairedDifference
    """Challenger coverage - champion coverage (share)."""
    prediction_psi: float | None
    """PSI of the challenger's point predictions against the champion's, over the shadowed rows,
    in :data:`PSI_BINS` bins cut at the champion's quantiles; None without shadowed rows."""
    psi_rows: int
    """Shadowed rows the PSI was computed from (at most :data:`POINT_RESERVOIR_ROWS`)."""

    @property
    def mae_ratio(self) -> float | None:
        """Challenger MAE / champion MAE over the same rows; None if undefined."""
        champion, challenger = self.champion.mae, self.challenger.mae
        if champion is None or challenger is None or champion == 0:
            return None
        return challenger / champion


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


@dataclass(frozen=True)
class LiveComparison:
    """The live side-by-side of every (champion, challenger) pair in a window of the log."""

    window_hours: float | None
    """Blocks created in the last this many hours; None: everything the log holds."""
    source: str
    """Which log was read (for the reader; the URL's password is never in it)."""
    champions: dict[str, ChampionTotals]
    """Every champion version that predicted in the window."""
    pairs: list[PairComparison] = field(default_factory=list)

    def pair(self, champion: str, challenger: str) -> PairComparison | None:
        """The comparison of ``challenger`` shadowing ``champion``; None if it never did."""
        for found in self.pairs:
            if (found.champion.model_version, found.challenger.model_version) == (
                champion,
                challenger,
            ):
                return found
        return None

    @property
    def window(self) -> str:
        """The window in words."""
        if self.window_hours is None:
            return "all blocks the log holds"
        return f"blocks created in the last {self.window_hours:g} h"

    def no_challenger_message(self) -> str | None:
        """Why there is nothing to compare, and how to change that; None when there is."""
        if self.pairs:
            return None
        predicted = sum(t.rows_predicted for t in self.champions.values())
        if not predicted:
            what = "no predictions at all"
        else:
            by = ", ".join(f"{v}: {t.rows_predicted:,} rows" for v, t in self.champions.items())
            what = f"predictions by {by}, none scored by a challenger"
        return (
            f"no challenger data in the {self.window} ({self.source}): {what}. To compare, set "
            "DELIVERY_ETA_SHADOW_MODEL_TAG on the service (a model tag, or 'candidate' for the "
            "newest candidate; DELIVERY_ETA_SHADOW_FRACTION sets the share of requests), then "
            "send feedback for its predictions."
        )

    def table(self) -> str:
        """The comparison for people: one aligned section per pair."""
        lines = [f"Champion vs challenger on live traffic: {self.window} ({self.source})"]
        message = self.no_challenger_message()
        if message is not None:
            return "\n".join([*lines, "", message])
        for pair in self.pairs:
            lines += ["", *_pair_lines(pair)]
        lines += ["", f"95 % CI: {CI_METHOD}."]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """The comparison for machines (``--json``): every figure, plus the method and window."""
        pairs = []
        for pair in self.pairs:
            entry = asdict(pair)
            entry["mae_ratio"] = pair.mae_ratio
            entry["mae_difference"]["significant"] = pair.mae_difference.significant
            entry["coverage_difference"]["significant"] = pair.coverage_difference.significant
            pairs.append(entry)
        return {
            "window_hours": self.window_hours,
            "source": self.source,
            "champions": {v: asdict(t) for v, t in self.champions.items()},
            "pairs": pairs,
            "ci_method": CI_METHOD,
            "min_pairs_for_ci": MIN_PAIRS_FOR_CI,
            "message": self.no_challenger_message(),
        }


def _number(value: float | None, digits: int, *, signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:{'+' if signed else ''}.{digits}f}"


def _interval(difference: PairedDifference, digits: int) -> str:
    if difference.ci_low is None or difference.ci_high is None:
        return "-"
    low = _number(difference.ci_low, digits, signed=True)
    return f"[{low}, {_number(difference.ci_high, digits, signed=True)}]"


def _verdict(difference: PairedDifference, above: str, below: str) -> str:
    if difference.pairs == 0:
        return "no labelled pairs yet"
    if difference.significant is None:
        return f"too few pairs to tell (< {MIN_PAIRS_FOR_CI})"
    if not difference.significant:
        return "no significant difference"
    assert difference.mean is not None
    return above if difference.mean > 0 else below


def _pair_lines(pair: PairComparison) -> list[str]:
    champion, challenger = pair.champion, pair.challenger
    counts = _aligned(
        [
            [
                "rows predicted by the champion",
                f"{pair.rows_predicted:,}",
                "labelled",
                f"{pair.labelled_rows:,}",
            ],
            [
                "rows also scored by the challenger",
                f"{pair.rows_shadowed:,}",
                "labelled",
                f"{pair.labelled_shadowed_rows:,}",
            ],
        ],
        right={1, 3},
    )
    mae, cover = pair.mae_difference, pair.coverage_difference
    latency_rows = []
    for label, attribute, digits in (
        ("inference ms per call, p50", "ms_p50", 3),
        ("inference ms per call, p95", "ms_p95", 3),
        ("inference us per row, p50", "us_per_row_p50", 2),
        ("inference us per row, p95", "us_per_row_p95", 2),
    ):
        latency_rows.append(
            [
                label,
                _number(getattr(champion.latency, attribute), digits),
                _number(getattr(challenger.latency, attribute), digits),
                "",
                "",
                "",
            ]
        )
    figures = _aligned(
        [
            ["", "champion", "challenger", "challenger - champion", "95 % CI", ""],
            [
                "MAE (min)",
                _number(champion.mae, 3),
                _number(challenger.mae, 3),
                _number(mae.mean, 3, signed=True),
                _interval(mae, 3),
                _verdict(mae, "challenger worse", "challenger better"),
            ],
            [
                f"{NOMINAL_COVERAGE * 100:.0f} % interval coverage",
                _number(champion.coverage, 3),
                _number(challenger.coverage, 3),
                _number(cover.mean, 3, signed=True),
                _interval(cover, 3),
                _verdict(cover, "challenger covers more", "challenger covers less"),
            ],
            *latency_rows,
        ],
        right={1, 2, 3},
    )
    psi_text = (
        "-"
        if pair.prediction_psi is None
        else f"{pair.prediction_psi:.4f} over {pair.psi_rows:,} shadowed rows"
    )
    return [
        f"{champion.model_version} (champion) vs {challenger.model_version} (challenger)",
        *(f"  {line}" for line in counts),
        "",
        *(f"  {line}" for line in figures),
        f"  inference: per block the challenger shadowed ({champion.latency.blocks:,} champion, "
        f"{challenger.latency.blocks:,} challenger blocks with a stored call)",
        f"  prediction PSI, challenger vs champion ({PSI_BINS} bins at the champion's "
        f"quantiles): {psi_text}",
    ]


def _aligned(rows: list[list[str]], right: set[int]) -> list[str]:
    """``rows`` as text columns two spaces apart, ``right`` columns right-aligned."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(
            cell.rjust(width) if i in right else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]
