"""The live champion-vs-challenger comparison on its own (no log): paired MAE and coverage
differences with known answers, their confidence intervals, the PSI, the inference percentiles,
memory that stays fixed however many rows stream through, and the table and JSON forms."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from models.drift_stats import bin_shares, psi, reference_bins
from models.promotion import live_builder
from models.promotion.live_builder import CallTiming, LiveComparisonBuilder, ScoredBlock
from models.promotion.live_comparison import PairComparison
from models.promotion.statistics import CONFIDENCE_Z, MIN_PAIRS_FOR_CI, PairedDifference

CHAMPION, CHALLENGER = "delivery_eta:champ", "delivery_eta:chal"
CHAMPION_CALL, CHALLENGER_CALL = CallTiming(1.0, 10), CallTiming(4.0, 40)


def _outputs(points: np.ndarray, half_width: float = 10.0) -> np.ndarray:
    return np.column_stack([points, points - half_width, points + half_width])


def _block(
    truth: np.ndarray,
    champion: np.ndarray,
    challenger: np.ndarray | None,
    *,
    labelled: np.ndarray | None = None,
    champion_width: float = 10.0,
    challenger_width: float = 10.0,
    call: CallTiming | None = CHAMPION_CALL,
    shadow_call: CallTiming | None = CHALLENGER_CALL,
) -> ScoredBlock:
    actual = truth.astype(np.float64).copy()
    if labelled is not None:
        actual[~labelled] = np.nan
    return ScoredBlock(
        model_version=CHAMPION,
        outputs=_outputs(champion, champion_width),
        actual=actual,
        call=call,
        shadow_version=None if challenger is None else CHALLENGER,
        shadow_outputs=None if challenger is None else _outputs(challenger, challenger_width),
        shadow_call=None if challenger is None else shadow_call,
    )


def _only_pair(builder: LiveComparisonBuilder) -> PairComparison:
    result = builder.result(24, "test")
    assert len(result.pairs) == 1
    pair = result.pair(CHAMPION, CHALLENGER)
    assert pair is result.pairs[0]
    return pair


def test_a_challenger_exactly_5_minutes_worse_on_every_row_is_5_worse_with_a_tight_ci() -> None:
    rng = np.random.default_rng(1)
    builder = LiveComparisonBuilder()
    for _ in range(20):  # 20 requests of 25 rows: 500 pairs, spread over blocks
        truth = rng.uniform(10, 60, 25)
        over = rng.uniform(0, 8, 25)  # the champion over-predicts by 0-8 min
        builder.add_blocks([_block(truth, truth + over, truth + over + 5.0)])
    pair = _only_pair(builder)
    difference = pair.mae_difference
    assert difference.pairs == pair.labelled_shadowed_rows == 500
    assert difference.mean == pytest.approx(5.0, abs=1e-9)
    assert difference.ci_low is not None and difference.ci_high is not None
    assert difference.ci_high - difference.ci_low < 1e-6
    assert difference.ci_low == pytest.approx(5.0, abs=1e-6)
    assert difference.significant is True
    assert pair.challenger.mae == pytest.approx(pair.champion.mae + 5.0)  # type: ignore[operator]
    assert pair.mae_ratio is not None and pair.mae_ratio > 1
    assert "challenger worse" in builder.result(24, "test").table()


def test_identical_models_differ_by_zero_and_their_psi_is_zero() -> None:
    rng = np.random.default_rng(2)
    truth = rng.gamma(6, 5, 2_000)
    points = truth + rng.normal(0, 4, truth.size)
    builder = LiveComparisonBuilder()
    builder.add_blocks([_block(truth, points, points.copy())])
    pair = _only_pair(builder)
    assert (pair.mae_difference.mean, pair.mae_difference.ci_low, pair.mae_difference.ci_high) == (
        0.0,
        0.0,
        0.0,
    )
    assert pair.mae_difference.significant is False
    assert pair.coverage_difference.mean == 0.0
    assert pair.champion.mae == pair.challenger.mae
    assert pair.prediction_psi == pytest.approx(0.0, abs=1e-12)
    table = builder.result(24, "test").table()
    assert "no significant difference" in table


def test_the_coverage_difference_is_paired_with_its_normal_interval() -> None:
    # The champion's wide intervals cover every label; the challenger's narrow ones only the
    # 600 of 1,000 rows where it is within 1 minute.
    n = 1_000
    truth = np.full(n, 30.0)
    champion = truth.copy()
    challenger = truth + np.where(np.arange(n) < 600, 0.5, 3.0)
    builder = LiveComparisonBuilder()
    builder.add_blocks([_block(truth, champion, challenger, challenger_width=1.0)])
    pair = _only_pair(builder)
    assert pair.champion.coverage == 1.0
    assert pair.challenger.coverage == pytest.approx(0.6)
    coverage = pair.coverage_difference
    assert coverage.mean == pytest.approx(-0.4)
    # Per-row differences are 0 (600 rows) or -1 (400 rows): sample variance p (1 - p) n / (n - 1).
    half_width = CONFIDENCE_Z * math.sqrt(0.4 * 0.6 * n / (n - 1) / n)
    assert coverage.ci_low == pytest.approx(-0.4 - half_width)
    assert coverage.ci_high == pytest.approx(-0.4 + half_width)
    assert coverage.significant is True
    assert "challenger covers less" in builder.result(24, "test").table()


def test_the_mae_interval_is_the_normal_approximation_on_the_paired_differences() -> None:
    rng = np.random.default_rng(3)
    truth = rng.gamma(6, 5, 400)
    champion = truth + rng.normal(0, 4, 400)
    challenger = truth + rng.normal(0.5, 5, 400)
    builder = LiveComparisonBuilder()
    for rows in np.array_split(np.arange(400), 7):
        builder.add_blocks([_block(truth[rows], champion[rows], challenger[rows])])
    differences = np.abs(truth - challenger) - np.abs(truth - champion)
    half_width = CONFIDENCE_Z * differences.std(ddof=1) / math.sqrt(differences.size)
    got = _only_pair(builder).mae_difference
    assert got.mean == pytest.approx(differences.mean())
    assert got.ci_low == pytest.approx(differences.mean() - half_width)
    assert got.ci_high == pytest.approx(differences.mean() + half_width)


def test_no_interval_and_no_significance_below_30_pairs() -> None:
    truth = np.linspace(10, 50, MIN_PAIRS_FOR_CI - 1)
    builder = LiveComparisonBuilder()
    builder.add_blocks([_block(truth, truth, truth + 5.0)])
    pair = _only_pair(builder)
    assert pair.mae_difference == PairedDifference(MIN_PAIRS_FOR_CI - 1, 5.0, None, None)
    assert pair.mae_difference.significant is None
    assert "too few pairs to tell (< 30)" in builder.result(24, "test").table()
    # One more pair and the interval is given.
    builder.add_blocks([_block(np.array([20.0]), np.array([20.0]), np.array([25.0]))])
    assert _only_pair(builder).mae_difference.ci_low == pytest.approx(5.0)


def test_unshadowed_and_unlabelled_rows_count_as_predicted_but_not_as_pairs() -> None:
    truth = np.arange(10, 20, dtype=np.float64)
    labelled = np.arange(10) < 4
    builder = LiveComparisonBuilder()
    builder.add_blocks(
        [
            _block(truth, truth + 1, truth + 2, labelled=labelled),  # 10 shadowed, 4 labelled
            _block(truth, truth + 1, None),  # 10 not shadowed, all labelled
            _block(truth[:3], truth[:3], None, labelled=np.zeros(3, bool)),
        ]
    )
    result = builder.result(24, "test")
    pair = _only_pair(builder)
    assert (pair.rows_predicted, pair.labelled_rows) == (23, 14)
    assert (pair.rows_shadowed, pair.labelled_shadowed_rows) == (10, 4)
    assert (pair.champion.mae, pair.challenger.mae) == (1.0, 2.0)
    assert result.champions[CHAMPION].rows_predicted == 23
    assert result.no_challenger_message() is None


def test_a_window_without_a_challenger_says_how_to_get_one() -> None:
    builder = LiveComparisonBuilder()
    builder.add_blocks([_block(np.array([30.0]), np.array([31.0]), None)])
    result = builder.result(6, "sqlite log /x")
    assert result.pairs == []
    message = result.no_challenger_message()
    assert message is not None and "DELIVERY_ETA_SHADOW_MODEL_TAG" in message
    assert f"{CHAMPION}: 1 rows" in message and "last 6 h" in message
    assert message in result.table()
    empty = LiveComparisonBuilder().result(None, "redis log").no_challenger_message()
    assert empty is not None and "no predictions at all" in empty


def test_a_challengers_answer_of_another_shape_is_not_paired() -> None:
    builder = LiveComparisonBuilder()
    block = _block(np.array([30.0, 31.0]), np.array([30.0, 31.0]), np.array([30.0, 31.0]))
    broken = ScoredBlock(
        block.model_version,
        block.outputs,
        block.actual,
        block.call,
        CHALLENGER,
        block.outputs[:1],  # one row for a two-row block
        block.shadow_call,
    )
    builder.add_blocks([broken])
    result = builder.result(24, "test")
    assert result.pairs == [] and result.champions[CHAMPION].rows_predicted == 2


def test_the_prediction_psi_uses_the_champions_deciles() -> None:
    rng = np.random.default_rng(4)
    truth = rng.gamma(6, 5, 5_000)
    champion = truth + rng.normal(0, 3, truth.size)
    challenger = champion * 1.3  # a distribution shift
    builder = LiveComparisonBuilder()
    builder.add_blocks([_block(truth, champion, challenger)])
    bins = reference_bins(champion, n_bins=10)
    expected = psi(
        bin_shares(challenger, bins["inner_edges"]), bin_shares(champion, bins["inner_edges"])
    )
    pair = _only_pair(builder)
    assert pair.prediction_psi == pytest.approx(expected)
    assert pair.prediction_psi > 0.2  # type: ignore[operator]
    assert pair.psi_rows == 5_000


def test_inference_percentiles_take_one_sample_per_block() -> None:
    builder = LiveComparisonBuilder()
    champion_ms = np.arange(1, 101, dtype=np.float64) / 10  # 0.1 .. 10 ms
    for i, ms in enumerate(champion_ms):
        truth = np.full(2, 30.0)
        builder.add_blocks(
            [
                _block(
                    truth,
                    truth,
                    truth,
                    call=CallTiming(float(ms), 4),  # 4 rows per call
                    shadow_call=CallTiming(float(ms) * 10, 100),
                )
            ]
        )
        if i == 0:  # a block logged before calls were kept: in the rows, not in the latencies
            builder.add_blocks([_block(truth, truth, truth, call=None, shadow_call=None)])
    pair = _only_pair(builder)
    champion, challenger = pair.champion.latency, pair.challenger.latency
    assert (champion.blocks, challenger.blocks) == (100, 100)
    assert champion.ms_p50 == pytest.approx(np.percentile(champion_ms, 50))
    assert champion.ms_p95 == pytest.approx(np.percentile(champion_ms, 95))
    assert champion.us_per_row_p50 == pytest.approx(np.percentile(champion_ms, 50) * 1000 / 4)
    assert challenger.ms_p95 == pytest.approx(np.percentile(champion_ms * 10, 95))
    assert challenger.us_per_row_p95 == pytest.approx(np.percentile(champion_ms * 100, 95))


def test_memory_stays_fixed_while_rows_stream_through(monkeypatch: pytest.MonkeyPatch) -> None:
    # Small reservoirs so that the stream is many times their size within a quick test.
    monkeypatch.setattr(live_builder, "POINT_RESERVOIR_ROWS", 1_000)
    monkeypatch.setattr(live_builder, "CALL_RESERVOIR_BLOCKS", 100)
    rng = np.random.default_rng(6)
    builder = LiveComparisonBuilder()
    all_truth, all_champion, all_challenger = [], [], []
    sizes = []
    for _ in range(100):
        truth = rng.gamma(6, 5, 500)
        champion = truth + rng.normal(0, 4, 500)
        challenger = truth * 1.1 + rng.normal(0, 4, 500)
        builder.add_blocks([_block(truth, champion, challenger)])
        sizes.append(builder.sample_bytes)
        all_truth.append(truth)
        all_champion.append(champion)
        all_challenger.append(challenger)
    assert len(set(sizes)) == 1  # the first block filled the reservoirs; nothing grew after
    assert sizes[0] == 1_000 * 2 * 8 + 2 * 100 * 2 * 8
    truth, champion, challenger = map(np.concatenate, (all_truth, all_champion, all_challenger))
    pair = _only_pair(builder)
    # Sums are exact over all 50,000 rows; the PSI comes from the 1,000-row sample.
    assert pair.labelled_shadowed_rows == 50_000 and pair.psi_rows == 1_000
    assert pair.champion.mae == pytest.approx(np.mean(np.abs(truth - champion)))
    assert pair.challenger.mae == pytest.approx(np.mean(np.abs(truth - challenger)))
    bins = reference_bins(champion, n_bins=10)["inner_edges"]
    exact = psi(bin_shares(challenger, bins), bin_shares(champion, bins))
    assert pair.prediction_psi == pytest.approx(exact, abs=0.03)


def test_the_json_form_holds_every_figure() -> None:
    truth = np.linspace(10, 60, 40)
    builder = LiveComparisonBuilder()
    builder.add_blocks([_block(truth, truth + 1, truth + 3)])
    document = json.loads(json.dumps(builder.result(24, "sqlite log /x").to_dict()))
    (pair,) = document["pairs"]
    assert pair["champion"]["model_version"] == CHAMPION
    assert pair["challenger"]["mae"] == pytest.approx(3.0)
    assert pair["mae_difference"]["mean"] == pytest.approx(2.0)
    assert pair["mae_difference"]["significant"] is True
    assert pair["labelled_shadowed_rows"] == 40 and pair["mae_ratio"] == pytest.approx(3.0)
    assert pair["challenger"]["latency"]["ms_p50"] == 4.0
    assert document["window_hours"] == 24 and document["message"] is None
    assert "normal approximation" in document["ci_method"]


def test_the_table_aligns_its_columns() -> None:
    truth = np.linspace(10, 60, 40)
    builder = LiveComparisonBuilder()
    builder.add_blocks([_block(truth, truth + 1, truth + 3)])
    table = builder.result(24, "sqlite log /x").table()
    print("\n" + table)
    lines = table.splitlines()
    header = next(line for line in lines if "challenger - champion" in line)
    mae = next(line for line in lines if line.lstrip().startswith("MAE (min)"))
    coverage = next(line for line in lines if "90 % interval coverage" in line)
    # Right-aligned numbers end where their header ends.
    for column in ("champion", "challenger", "challenger - champion"):
        end = header.index(column) + len(column)
        assert mae[end - 1] != " " and mae[end] == " ", (column, mae)
        assert coverage[end - 1] != " " and coverage[end] == " ", (column, coverage)
    assert "+2.000" in mae and "challenger worse" in mae
