"""Champion vs challenger on the same live requests: what the comparison found, per pair, and
how it reads -- a table for people, a dict for machines.

With a challenger configured (``DELIVERY_ETA_SHADOW_MODEL_TAG``), the service has it score a share
of the requests beside the champion, off the response path, and the prediction log keeps both
answers with the block. A label sent later scores both models on the same order, so the
comparison is **paired**: per labelled row the difference
``|error of the challenger| - |error of the champion|``, whose mean is the MAE difference, and
likewise for interval coverage. That removes the order-to-order variance two unpaired MAEs
would carry.

No I/O: the live compare tool (``make compare``) reads the log and folds its blocks in with
``models.promotion.live_builder`` (which holds the memory bounds); the statistics and their
confidence intervals are ``models.promotion.statistics``; the promotion gate
(``models.promotion.gate``) reads the :class:`PairComparison` of its candidate.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from models.promotion.statistics import CI_METHOD, MIN_PAIRS_FOR_CI, PairedDifference

PSI_BINS = 10
"""Bins of the prediction PSI: deciles of the champion's point predictions."""
NOMINAL_COVERAGE = 0.90
"""The intervals' nominal coverage (``models.model.DeliveryTimeModel.interval_level``)."""

Role = Literal["champion", "challenger"]


@dataclass(frozen=True)
class InferenceLatency:
    """Percentiles of one model's calls over the blocks it scored, one sample per block (a call
    that scored several requests counts once for each): ms per call and us per row."""

    blocks: int
    """Blocks with a stored call (the percentiles' sample is at most
    :data:`~models.promotion.live_builder.CALL_RESERVOIR_BLOCKS` of them)."""
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
    """Shadowed rows the PSI was computed from (at most
    :data:`~models.promotion.live_builder.POINT_RESERVOIR_ROWS`)."""

    @property
    def mae_ratio(self) -> float | None:
        """Challenger MAE / champion MAE over the same rows; None if undefined."""
        champion, challenger = self.champion.mae, self.challenger.mae
        if champion is None or challenger is None or champion == 0:
            return None
        return challenger / champion


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
